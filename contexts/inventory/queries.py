"""Read side of the inventory context."""

from __future__ import annotations

from uuid import UUID

from cleave.core.errors import NotFound

from .models import Reservation, StockItem


def stock_get(*, sku: str) -> StockItem:
    item = None
    # A SKU with a NUL byte (which PostgreSQL refuses even to compare) or
    # longer than the column names no stock: not found, without asking.
    if "\x00" not in sku and len(sku) <= StockItem._meta.get_field("sku").max_length:
        item = StockItem.objects.filter(sku=sku).first()
    if item is None:
        raise NotFound(f"No stock is kept for SKU {sku}.")
    return item


def reservation_get(*, reservation_id: UUID) -> Reservation:
    reservation = Reservation.objects.prefetch_related("lines").filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound(f"No reservation {reservation_id}.")
    return reservation


def reservation_get_by_key(*, idempotency_key: str) -> Reservation:
    """The reservation made with this idempotency key."""
    reservation = (
        Reservation.objects.prefetch_related("lines")
        .filter(idempotency_key=idempotency_key)
        .first()
    )
    if reservation is None:
        raise NotFound(f"No reservation was made with idempotency key {idempotency_key!r}.")
    return reservation
