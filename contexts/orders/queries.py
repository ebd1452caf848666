"""Read side of the orders context."""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet

from cleave.api import NotFound

from .apps import ALIAS
from .models import Cart, Order


def cart_contents(*, cart: Cart) -> dict:
    """The cart with its items, their total and its currency."""
    items = list(cart.items.using(ALIAS).all())
    return {
        "id": cart.id,
        "items": items,
        "total": sum((item.line_total for item in items), Decimal("0")),
        "currency": items[0].currency if items else settings.CLEAVE_CURRENCY,
    }


def orders_for_customer(*, customer_id: UUID) -> QuerySet[Order]:
    return (
        Order.objects.using(ALIAS)
        .filter(customer_id=customer_id)
        .prefetch_related("lines")
        .order_by("-created_at", "-id")
    )


def order_for_customer(*, customer_id: UUID, order_id: UUID) -> Order:
    """The customer's own order; another customer's order is 'not found'."""
    order = orders_for_customer(customer_id=customer_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order {order_id}.")
    return order
