from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "catalog"


class CatalogConfig(ContextConfig):
    name = "contexts.catalog"
    label = "catalog"
    database = ALIAS
    verbose_name = "Catalog"
