from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "notifications"


class NotificationsConfig(ContextConfig):
    name = "contexts.notifications"
    label = "notifications"
    database = ALIAS
    verbose_name = "Notifications"
