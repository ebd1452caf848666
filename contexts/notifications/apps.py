from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "notifications"


class NotificationsConfig(ContextConfig):
    name = "contexts.notifications"
    label = "notifications"
    database = ALIAS
    verbose_name = "Notifications"
    subscribes = (
        "user.created",
        "user.verification_requested",
        "user.updated",
        "user.verified",
        "user.email_changed",
        "user.password_changed",
        "user.blocked",
        "user.deleted",
        "order.confirmed",
        "order.cancelled",
    )
