from __future__ import annotations

import uuid

from django.db import models
from django.db.models import F, Q
from django.utils import timezone

from contracts import inventory


class StockItem(models.Model):
    """
    Stock of one SKU. `reserved` is held for orders not yet paid.

    The database refuses `reserved > on_hand`, so no code path (and no race)
    can promise more than the shelf holds.
    """

    sku = models.CharField(max_length=64, primary_key=True)
    on_hand = models.PositiveIntegerField()
    reserved = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.CheckConstraint(
                condition=Q(reserved__lte=F("on_hand")),
                name="inventory_stock_reserved_lte_on_hand",
                violation_error_message="Reserved stock may not exceed the stock on hand.",
            ),
            models.CheckConstraint(
                condition=Q(on_hand__gte=0) & Q(reserved__gte=0),
                name="inventory_stock_non_negative",
                violation_error_message="Stock levels may not be negative.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku}: {self.available} of {self.on_hand} available"

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class Reservation(models.Model):
    """Stock held for one order until it is committed (paid) or released."""

    Status = inventory.ReservationStatus

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    order_id = models.UUIDField(db_index=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.HELD)
    idempotency_key = models.CharField(max_length=255, unique=True, null=True, blank=True)
    expires_at = models.DateTimeField()
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    release_reason = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # the expiry sweep looks for held reservations past their time
            models.Index(fields=["status", "expires_at"], name="inventory_res_status_expiry"),
        ]

    def __str__(self) -> str:
        return f"Reservation {self.id} ({self.status})"

    @property
    def line_items(self) -> list[ReservationLine]:
        """The lines in SKU order: as the command that wrote or read them kept them, else read."""
        kept = self.__dict__.get("_line_items")
        if kept is None:
            kept = self._line_items = list(self.lines.all())
        return kept

    def keep_lines(self, lines: list[ReservationLine]) -> None:
        """Remember the lines just written or read, so `line_items` needs no query."""
        self._line_items = sorted(lines, key=lambda line: line.sku)


class ReservationLine(models.Model):
    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="lines")
    sku = models.CharField(max_length=64)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["sku"]
        constraints = [
            models.UniqueConstraint(
                fields=["reservation", "sku"], name="inventory_reservation_line_unique_sku"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gte=1), name="inventory_reservation_line_quantity_positive"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"
