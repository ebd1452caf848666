from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "analytics"


class AnalyticsConfig(ContextConfig):
    name = "contexts.analytics"
    label = "analytics"
    database = ALIAS
    verbose_name = "Analytics"
