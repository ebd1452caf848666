"""Read side of the orders context."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from cleave.api import NotFound

from .models import Cart, Order

ALIAS = "orders"


def cart_for_customer(*, customer_id: UUID) -> Cart | None:
    return (
        Cart.objects.using(ALIAS).prefetch_related("items").filter(customer_id=customer_id).first()
    )


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
