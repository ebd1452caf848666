from django.contrib import admin

from . import commands
from .models import Category, Product


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ("name", "slug")
    search_fields = ("slug", "name")
    prepopulated_fields = {"slug": ("name",)}


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("sku", "name", "category", "price", "currency", "active", "created_at")
    list_filter = ("category", "active")
    search_fields = ("sku", "name")
    list_select_related = ("category",)
    readonly_fields = ("id", "created_at")
    fields = (
        "id",
        "sku",
        "name",
        "description",
        "category",
        "price",
        "currency",
        "active",
        "created_at",
    )

    def get_readonly_fields(self, request, obj=None):
        # The SKU is how inventory and orders refer to the product: fixed once created.
        return (*self.readonly_fields, "sku") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        # New products go through the command so `product.created` is published.
        product = commands.product_create(
            sku=obj.sku,
            name=obj.name,
            description=obj.description,
            price=obj.price,
            currency=obj.currency,
            category_slug=obj.category_id,
            active=obj.active,
        )
        obj.pk = product.pk
        obj.created_at = product.created_at
        obj._state.adding = False
        obj._state.db = product._state.db
