from django.contrib import admin, messages

from . import commands
from .models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ("email", "name", "status", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("email", "name", "id")
    readonly_fields = ("id", "email", "status", "created_at", "updated_at")
    fields = ("id", "email", "name", "status", "created_at", "updated_at")
    actions = ("block",)

    def has_add_permission(self, request) -> bool:
        return False  # customers register themselves through the API

    @admin.action(description="Block the selected customers", permissions=["change"])
    def block(self, request, queryset):
        for customer in queryset:
            commands.customer_block(customer_id=customer.id)
        messages.success(request, f"Blocked {queryset.count()} customer(s).")
