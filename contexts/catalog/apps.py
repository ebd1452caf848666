from cleave.contexts import ContextConfig


class CatalogConfig(ContextConfig):
    name = "contexts.catalog"
    label = "catalog"
    verbose_name = "Catalog"
