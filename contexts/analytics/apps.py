from cleave.contexts import ContextConfig


class AnalyticsConfig(ContextConfig):
    name = "contexts.analytics"
    label = "analytics"
    verbose_name = "Analytics"
    subscribes = ("user.created", "order.confirmed", "order.cancelled")
