"""The orders context's contract: order events; it calls the checkout's participants."""

from cleave.core.declarations import ContextContract, EventType

from ._schemas import CURRENCY, MONEY, POSITIVE_INT, STRING, UUID, obj

CONTEXT = "orders"

# --- events ------------------------------------------------------------------------------

LINE = obj(
    {
        "product_id": UUID,
        "sku": STRING,
        "name": STRING,
        "unit_price": MONEY,
        "quantity": POSITIVE_INT,
        "line_total": MONEY,
    }
)
LINES = {"type": "array", "items": LINE, "minItems": 1}

ORDER_PLACED = EventType(
    "order.placed",
    version=1,
    description="A customer checked out; the checkout saga starts.",
    schema=obj(
        {
            "order_id": UUID,
            "customer_id": UUID,
            "lines": LINES,
            "total": MONEY,
            "currency": CURRENCY,
        }
    ),
)

ORDER_CONFIRMED = EventType(
    "order.confirmed",
    version=1,
    description="Stock is committed and the payment captured.",
    schema=obj(
        {
            "order_id": UUID,
            "customer_id": UUID,
            "lines": LINES,
            "total": MONEY,
            "currency": CURRENCY,
            "payment_id": UUID,
        }
    ),
)

ORDER_CANCELLED = EventType(
    "order.cancelled",
    # 2: `customer_blocked` and `customer_deleted` (a consumer of 1 refuses them)
    version=2,
    description="The order will not be fulfilled; `reason` says why.",
    schema=obj(
        {
            "order_id": UUID,
            "customer_id": UUID,
            "reason": {
                "enum": [
                    "payment_declined",
                    "out_of_stock",
                    "user_invalid",
                    "payment_error",
                    "timeout",
                    "customer_request",
                    "service_unavailable",
                    "customer_blocked",
                    "customer_deleted",
                ]
            },
            "total": MONEY,
            "currency": CURRENCY,
        }
    ),
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(ORDER_PLACED, ORDER_CONFIRMED, ORDER_CANCELLED),
    description="Carts, orders and the checkout saga that orchestrates them.",
)
