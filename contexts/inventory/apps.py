from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "inventory"


class InventoryConfig(ContextConfig):
    name = "contexts.inventory"
    label = "inventory"
    database = ALIAS
    verbose_name = "Inventory"
