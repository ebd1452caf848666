"""Read side of the orders context."""

from __future__ import annotations

import uuid
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db.models import QuerySet

from cleave.core.errors import NotFound

from .models import Cart, Order

# A customer's cart id is derived from the customer's, so that reading a cart
# that does not exist yet (its user.created handler has not run) can answer
# with the id it will have, without writing.
CART_NAMESPACE = uuid.UUID("6b1f3d7e-2c1a-4f6e-9a0b-5d4c3b2a1908")


def cart_id_for(*, customer_id: UUID) -> UUID:
    return uuid.uuid5(CART_NAMESPACE, str(customer_id))


def cart_for_customer(*, customer_id: UUID) -> dict:
    """The customer's cart as the API shows it; an empty one if it was never created."""
    cart = Cart.objects.filter(customer_id=customer_id).first()
    if cart is not None:
        return cart_contents(cart=cart)
    return {
        "id": cart_id_for(customer_id=customer_id),
        "items": [],
        "total": Decimal("0"),
        "currency": settings.CLEAVE_CURRENCY,
    }


def cart_contents(*, cart: Cart) -> dict:
    """The cart with its items, their total and its currency."""
    items = list(cart.items.all())
    return {
        "id": cart.id,
        "items": items,
        "total": sum((item.line_total for item in items), Decimal("0")),
        "currency": items[0].currency if items else settings.CLEAVE_CURRENCY,
    }


def orders_for_customer(*, customer_id: UUID) -> QuerySet[Order]:
    return (
        Order.objects.filter(customer_id=customer_id)
        .prefetch_related("lines")
        .order_by("-created_at", "-id")
    )


def order_for_customer(*, customer_id: UUID, order_id: UUID) -> Order:
    """The customer's own order; another customer's order is 'not found'."""
    order = orders_for_customer(customer_id=customer_id).filter(pk=order_id).first()
    if order is None:
        raise NotFound(f"No order {order_id}.")
    return order
