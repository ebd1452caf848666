"""The orders context's contract: order events; it calls the checkout's participants."""

from django.db.models import TextChoices

from cleave.core.declarations import ContextContract, EventType

from ._schemas import CURRENCY, MONEY, POSITIVE_INT, STRING, UUID, obj

CONTEXT = "orders"


class CancellationReason(TextChoices):
    """Why an order was cancelled: its `cancellation_reason`, and `order.cancelled`'s `reason`."""

    PAYMENT_DECLINED = "payment_declined", "payment declined"
    OUT_OF_STOCK = "out_of_stock", "out of stock"
    USER_INVALID = "user_invalid", "customer invalid"
    PAYMENT_ERROR = "payment_error", "payment error"
    TIMEOUT = "timeout", "timeout"
    CUSTOMER_REQUEST = "customer_request", "customer request"
    SERVICE_UNAVAILABLE = "service_unavailable", "service unavailable"
    CUSTOMER_BLOCKED = "customer_blocked", "customer blocked"
    CUSTOMER_DELETED = "customer_deleted", "customer deleted"


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
            "reason": {"enum": CancellationReason.values},
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
