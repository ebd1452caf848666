from django.contrib import admin, messages

from cleave.admin.links import linked
from cleave.core.errors import ApplicationError

from . import commands
from .models import Payment

# the ids a payment holds, shown on its page by the links that stand for them
PAYMENT_LINKS = {"order_id": "order", "customer_id": "customer"}


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    order = linked("order_id", "orders.order")
    customer = linked("customer_id", "users.customer")

    list_display = ("created_at", "order", "amount", "currency", "status", "failure_reason")
    list_filter = ("status", "failure_reason", "currency", "created_at")
    search_fields = ("id", "order_id", "customer_id", "provider_reference", "idempotency_key")
    readonly_fields = fields = [PAYMENT_LINKS.get(f.name, f.name) for f in Payment._meta.fields]
    actions = ("refund",)

    def has_add_permission(self, request) -> bool:
        return False  # payments come from the checkout saga through the API

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a payment is a financial record

    @admin.action(description="Refund the selected captured payments", permissions=["change"])
    def refund(self, request, queryset):
        refunded = 0
        for payment in queryset.filter(status=Payment.Status.CAPTURED):
            try:
                commands.payment_refund(payment_id=payment.id)
            except ApplicationError as exc:
                messages.error(request, f"Payment {payment.id}: {exc.detail}")
            else:
                refunded += 1
        messages.success(request, f"Refunded {refunded} payment(s).")
