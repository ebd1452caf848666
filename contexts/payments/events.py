"""Events the payments context publishes."""

from cleave.events import EventType
from cleave.events.registry import CURRENCY, MONEY, UUID, obj

_PAYMENT = {
    "payment_id": UUID,
    "order_id": UUID,
    "customer_id": UUID,
    "amount": MONEY,
    "currency": CURRENCY,
}

PAYMENT_COMPLETED = EventType(
    "payment.completed",
    version=1,
    description="A charge was captured.",
    schema=obj(_PAYMENT),
)

PAYMENT_FAILED = EventType(
    "payment.failed",
    version=1,
    description="A charge was declined, or the provider failed or timed out.",
    schema=obj(
        {
            **_PAYMENT,
            "reason": {
                "type": "string",
                "enum": ["declined", "error", "timeout", "invalid_method"],
            },
        }
    ),
)

PAYMENT_REFUNDED = EventType(
    "payment.refunded",
    version=1,
    description="A captured charge was refunded in full.",
    schema=obj(_PAYMENT),
)
