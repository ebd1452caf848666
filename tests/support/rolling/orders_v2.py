"""
The orders contract of release 2: `order.placed` v2 carries its amount as one
object. Copied as `orders.py` into release 2's contracts package by the test.

Orders keeps publishing v1 while a consumer still reads it: the downcaster
turns each v2 payload into v1's, and every message carries both.
"""

from cleave.core.declarations import ContextContract, EventType
from contracts._schemas import CURRENCY, MONEY, UUID, obj
from contracts.orders import CONTEXT, LINES, ORDER_CANCELLED, ORDER_CONFIRMED


def placed_v2_to_v1(data: dict) -> dict:
    """v2's `amount` as v1's `total` and `currency`."""
    rest = {key: value for key, value in data.items() if key != "amount"}
    return {**rest, "total": data["amount"]["value"], "currency": data["amount"]["currency"]}


ORDER_PLACED = EventType(
    "order.placed",
    version=2,
    description="A customer checked out; the checkout saga starts.",
    schema=obj(
        {
            "order_id": UUID,
            "customer_id": UUID,
            "lines": LINES,
            "amount": obj({"value": MONEY, "currency": CURRENCY}),
        }
    ),
    downcasters={1: placed_v2_to_v1},
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(ORDER_PLACED, ORDER_CONFIRMED, ORDER_CANCELLED),
    description="Carts, orders and the checkout saga that orchestrates them.",
)
