from django.contrib import admin

from cleave.admin.links import linked
from cleave.admin.readonly import ReadOnlyAdmin  # the read model: written by handlers only

from .models import Counter, ProductSales


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
