from django.contrib import admin

from cleave.admin.links import linked

from .models import Counter, ProductSales


class ReadOnlyAdmin(admin.ModelAdmin):
    """The read model is written only by event handlers."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Counter)
class CounterAdmin(ReadOnlyAdmin):
    list_display = ("name", "value", "updated_at")
    search_fields = ("name",)


@admin.register(ProductSales)
class ProductSalesAdmin(ReadOnlyAdmin):
    product = linked("product_id", "catalog.product")

    list_display = ("sku", "quantity", "revenue", "product", "updated_at")
    readonly_fields = fields = ("product", "sku", "quantity", "revenue", "updated_at")
    search_fields = ("sku", "product_id")
    ordering = ("-quantity", "-revenue")
