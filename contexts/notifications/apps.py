from cleave.contexts import ContextConfig


class NotificationsConfig(ContextConfig):
    name = "contexts.notifications"
    label = "notifications"
    verbose_name = "Notifications"
    subscribes = ("user.created", "order.confirmed", "order.cancelled")
