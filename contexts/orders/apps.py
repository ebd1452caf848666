from cleave.contexts import ContextConfig


class OrdersConfig(ContextConfig):
    name = "contexts.orders"
    label = "orders"
    verbose_name = "Orders"
    subscribes = ("user.created",)
