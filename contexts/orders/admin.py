from django.contrib import admin, messages

from cleave.admin.actions import ObjectActionsMixin, confirmation, confirmed
from cleave.admin.links import linked, own_alias
from cleave.core.errors import ApplicationError

from . import commands
from .models import Cart, CartItem, Order, OrderLine


class CartItemInline(admin.TabularInline):
    model = CartItem
    extra = 0
    readonly_fields = (
        "product_id",
        "sku",
        "name",
        "unit_price",
        "currency",
        "quantity",
        "added_at",
    )


@admin.register(Cart)
class CartAdmin(admin.ModelAdmin):
    list_display = ("customer_id", "created_at", "updated_at")
    search_fields = ("customer_id", "id")
    inlines = (CartItemInline,)


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    can_delete = False
    readonly_fields = ("product_id", "sku", "name", "unit_price", "quantity", "line_total")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# the ids an order holds, shown on its page by the links that stand for them
ORDER_LINKS = {
    "customer_id": "customer",
    "payment_id": "payment",
    "reservation_id": "reservation",
    "saga_id": "saga",
}


@admin.register(Order)
class OrderAdmin(ObjectActionsMixin, admin.ModelAdmin):
    # what the order refers to by id, as links; its checkout saga lives in
    # this context's alias, beside the order
    customer, reservation, payment = (linked(field, model) for field, model in Order.REFERENCES)
    saga = linked("saga_id", "cleave.sagainstance", context=own_alias)

    list_display = (
        "id",
        "customer",
        "status",
        "total",
        "currency",
        "cancellation_reason",
        "created_at",
    )
    list_filter = ("status", "cancellation_reason", "created_at")
    search_fields = ("id", "customer_id", "payment_id", "saga_id")
    readonly_fields = fields = [ORDER_LINKS.get(f.name, f.name) for f in Order._meta.fields]
    inlines = (OrderLineInline,)
    actions = ("refund",)
    object_actions = {"refund": "Refund and cancel"}

    def object_action_applies(self, obj: Order, action: str) -> bool:
        return obj.status != Order.Status.CANCELLED

    @admin.action(
        description="Refund and cancel the selected orders (customer request)",
        permissions=["change"],
    )
    def refund(self, request, queryset):
        """Compensate each order's checkout saga: stock back, payment refunded, order cancelled."""
        if not confirmed(request):
            return confirmation(
                request,
                self,
                queryset,
                action="refund",
                title="Refund and cancel orders",
                question="Refund and cancel these orders, as the customer asked?",
                consequences=[
                    "Each order's checkout saga is compensated: committed stock goes back "
                    "on the shelf, the payment is refunded, the order is cancelled "
                    "(customer request) and the customer is told.",
                    "A pending order's running checkout is cancelled instead.",
                ],
                button="Yes, refund and cancel",
            )
        for order in queryset:
            try:
                order = commands.order_refund(order_id=order.id)
            except ApplicationError as exc:
                messages.error(request, f"Order {order.id}: {exc.detail}")
                continue
            if order.status == order.Status.CANCELLED:
                messages.success(request, f"Order {order.id} refunded and cancelled.")
            else:
                messages.warning(
                    request,
                    f"Order {order.id} is still {order.status}: its saga is compensating "
                    "(see Saga instances).",
                )
        return None

    def has_change_permission(self, request, obj=None) -> bool:
        # the refund action needs it; the form itself stays read-only
        return super().has_change_permission(request, obj) and obj is None

    def has_add_permission(self, request) -> bool:
        return False  # orders come from checkout, never from a form

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # the domain owns an order: it is refunded or cancelled, never deleted
