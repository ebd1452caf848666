"""Read side of the analytics context."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.conf import settings

from .models import Counter, ProductSales

TOP_PRODUCTS = 10
CENT = Decimal("0.01")


def _money(value: Decimal) -> str:
    return str(Decimal(value).quantize(CENT))


def summary() -> dict[str, Any]:
    """The shop's totals and its ten best-selling products (by quantity, then revenue)."""
    counters = dict(Counter.objects.values_list("name", "value"))
    top = ProductSales.objects.order_by("-quantity", "-revenue", "sku")[:TOP_PRODUCTS]
    return {
        "users_registered": int(counters.get(Counter.USERS_REGISTERED, 0)),
        "users_verified": int(counters.get(Counter.USERS_VERIFIED, 0)),
        "users_deleted": int(counters.get(Counter.USERS_DELETED, 0)),
        "orders_confirmed": int(counters.get(Counter.ORDERS_CONFIRMED, 0)),
        "orders_cancelled": int(counters.get(Counter.ORDERS_CANCELLED, 0)),
        "revenue": _money(counters.get(Counter.REVENUE, Decimal(0))),
        "currency": settings.CLEAVE_CURRENCY,
        "top_products": [
            {
                "product_id": str(row.product_id),
                "sku": row.sku,
                "quantity": row.quantity,
                "revenue": _money(row.revenue),
            }
            for row in top
        ],
    }
