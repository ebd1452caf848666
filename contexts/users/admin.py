from django import forms
from django.contrib import admin, messages

from cleave.admin.links import list_link

from . import commands
from .emails import UnacceptableEmail, normalize_email
from .models import Customer


class CustomerForm(forms.ModelForm):
    """The address an operator types goes through the same rule as a customer's."""

    class Meta:
        model = Customer
        fields = ("email", "name")

    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data["email"])
        except UnacceptableEmail as exc:
            raise forms.ValidationError(str(exc)) from None


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    """
    Operators read customers, rename them, change their address, block and
    delete them: every change goes through the users commands, so it
    publishes its event (`user.updated`, `user.blocked`, `user.deleted`) like
    the customer's own request would, and the other contexts follow.
    """

    list_display = ("email", "name", "status", "email_verified", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("email", "name", "id")
    readonly_fields = ("id", "status", "email_verified_at", "created_at", "updated_at", "orders")
    fields = (
        "id",
        "email",
        "name",
        "status",
        "email_verified_at",
        "created_at",
        "updated_at",
        "orders",
    )
    actions = ("block",)
    form = CustomerForm

    @admin.display(boolean=True, description="verified")
    def email_verified(self, customer: Customer) -> bool:
        return customer.email_verified

    @admin.display(description="orders")
    def orders(self, customer: Customer) -> str:
        """The customer's orders, in the orders context's admin (a link, no query)."""
        return list_link("orders.order", "The customer's orders", customer_id=customer.id)

    def has_add_permission(self, request) -> bool:
        return False  # customers register themselves through the API

    def save_model(self, request, obj, form, change) -> None:
        # only changes reach here (no add): the command saves and publishes
        commands.customer_update(
            customer_id=obj.id, name=form.cleaned_data["name"], email=form.cleaned_data["email"]
        )

    def delete_model(self, request, obj) -> None:
        commands.customer_delete(customer_id=obj.id)

    def delete_queryset(self, request, queryset) -> None:
        for customer_id in list(queryset.values_list("id", flat=True)):
            commands.customer_delete(customer_id=customer_id)

    @admin.action(description="Block the selected customers", permissions=["change"])
    def block(self, request, queryset):
        for customer in queryset:
            commands.customer_block(customer_id=customer.id)
        messages.success(request, f"Blocked {queryset.count()} customer(s).")
