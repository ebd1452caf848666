from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "orders"


class OrdersConfig(ContextConfig):
    name = "contexts.orders"
    label = "orders"
    database = ALIAS
    verbose_name = "Orders"
