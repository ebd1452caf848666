from django import forms
from django.contrib import admin, messages

from cleave.admin.links import linked
from cleave.core.errors import ApplicationError

from . import commands
from .models import Reservation, ReservationLine, StockItem


class StockItemForm(forms.ModelForm):
    class Meta:
        model = StockItem
        fields = ("sku", "on_hand")

    def clean_on_hand(self):
        on_hand = self.cleaned_data["on_hand"]
        if self.instance._state.adding or on_hand is None:
            return on_hand
        # Read `reserved` afresh: checkouts may have reserved since the page was opened.
        reserved = (
            StockItem.objects.filter(sku=self.instance.sku)
            .values_list("reserved", flat=True)
            .first()
        )
        if reserved is not None and on_hand < reserved:
            raise forms.ValidationError(
                f"Reserved stock may not exceed the stock on hand: {reserved} are reserved."
            )
        return on_hand


@admin.register(StockItem)
class StockItemAdmin(admin.ModelAdmin):
    form = StockItemForm
    list_display = ("sku", "on_hand", "reserved", "available", "updated_at")
    search_fields = ("sku",)
    readonly_fields = ("reserved", "available", "updated_at")
    fields = ("sku", "on_hand", "reserved", "available", "updated_at")

    def get_readonly_fields(self, request, obj=None):
        # Reservations refer to the SKU: it is fixed once the row exists.
        return (*self.readonly_fields, "sku") if obj else self.readonly_fields

    def has_delete_permission(self, request, obj=None) -> bool:
        # Deleting a row that holds reservations would strand them.
        return super().has_delete_permission(request, obj) and (obj is None or obj.reserved == 0)

    def save_model(self, request, obj, form, change):
        # Through the command, which re-checks `reserved` under a row lock: the
        # form's check may be stale by the time the operator presses save.
        saved = commands.stock_set(sku=obj.sku, on_hand=obj.on_hand)
        obj.reserved = saved.reserved
        obj.updated_at = saved.updated_at
        obj._state.adding = False
        obj._state.db = saved._state.db


class ReservationLineInline(admin.TabularInline):
    model = ReservationLine
    fields = ("sku", "quantity")
    readonly_fields = ("sku", "quantity")
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Reservation)
class ReservationAdmin(admin.ModelAdmin):
    order = linked("order_id", "orders.order")

    list_display = ("id", "order", "status", "expires_at", "created_at", "release_reason")
    list_filter = ("status", "created_at")
    search_fields = ("id", "order_id", "idempotency_key", "lines__sku")
    readonly_fields = (
        "id",
        "order",
        "status",
        "idempotency_key",
        "expires_at",
        "created_at",
        "updated_at",
        "release_reason",
    )
    fields = readonly_fields
    inlines = (ReservationLineInline,)
    actions = ("commit", "release")

    def has_add_permission(self, request) -> bool:
        return False  # reservations are made by checkouts through the API

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # a deleted held reservation would leave its stock reserved forever

    def _apply(self, request, queryset, command, verb: str) -> None:
        done, refused = 0, []
        for reservation in queryset:
            try:
                command(reservation_id=reservation.id)
            except ApplicationError as exc:
                refused.append(f"{reservation.id}: {exc.detail}")
            else:
                done += 1
        if done:
            messages.success(request, f"{verb} {done} reservation(s).")
        for message in refused:
            messages.error(request, message)

    @admin.action(description="Commit the selected reservations", permissions=["change"])
    def commit(self, request, queryset):
        self._apply(request, queryset, commands.reservation_commit, "Committed")

    @admin.action(description="Release the selected reservations", permissions=["change"])
    def release(self, request, queryset):
        self._apply(request, queryset, commands.reservation_release, "Released")
