"""The payments context's contract: payment events, and charges for the checkout."""

from django.db.models import TextChoices

from cleave.core.declarations import ContextContract, EventType, Operation, Problem

from ._schemas import CURRENCY, MONEY, UUID, obj

CONTEXT = "payments"


class PaymentStatus(TextChoices):
    """What became of a charge: a payment's `status`, as its API shows it."""

    # the provider has not (yet) told us the outcome; never final
    PENDING = "pending", "pending"
    CAPTURED = "captured", "captured"
    DECLINED = "declined", "declined"
    REFUNDED = "refunded", "refunded"
    FAILED = "failed", "failed"


class FailureReason(TextChoices):
    """Why a charge was not captured: a payment's `failure_reason`, and `payment.failed`'s."""

    DECLINED = "declined", "declined"
    ERROR = "error", "error"
    TIMEOUT = "timeout", "timeout"
    INVALID_METHOD = "invalid_method", "invalid method"
    # the caller gave up on the charge before it reached us (`charge_void`): the
    # key is fenced and nothing is published
    VOIDED = "voided", "voided"


# --- events ------------------------------------------------------------------------------

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
                # every reason but `voided`, which is never published
                "enum": [r for r in FailureReason.values if r != FailureReason.VOIDED],
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

# --- operations --------------------------------------------------------------------------


CHARGE_CREATE = Operation(
    CONTEXT,
    "charge_create",
    "POST",
    "/charges",
    permission="payments:write",
    callers=("orders",),
    problems=(Problem(409, "idempotency-key-reused", "the key made a different charge"),),
    description=(
        "Charge an order; declined is an answer, not an error. `pending` when the provider "
        "did not answer in time. 200 with the first payment for a repeated key."
    ),
)

CHARGE_FIND_BY_KEY = Operation(
    CONTEXT,
    "charge_find_by_key",
    "GET",
    "/charges",
    permission="payments:read",
    callers=("orders",),
    problems=(Problem(404, "not-found", "no charge was made with this key"),),
    description="The charge made with an Idempotency-Key: a lost answer, found again.",
)

CHARGE_VOID = Operation(
    CONTEXT,
    "charge_void",
    "POST",
    "/charges/void",
    permission="payments:write",
    callers=("orders",),
    problems=(
        Problem(503, "payment-provider-unavailable", "a pending charge could not be settled"),
    ),
    description=(
        "Settle the charge made with a key: captured becomes refunded, pending is settled "
        "with the provider, none yet is fenced (`failed`, `voided`); idempotent."
    ),
)

PAYMENT_REFUND = Operation(
    CONTEXT,
    "payment_refund",
    "POST",
    "/{payment_id}/refund",
    permission="payments:write",
    problems=(Problem(503, "payment-provider-unavailable", "the provider could not refund"),),
    description="Refund a captured payment; any other status is answered unchanged.",
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(PAYMENT_COMPLETED, PAYMENT_FAILED, PAYMENT_REFUNDED),
    operations=(CHARGE_CREATE, CHARGE_FIND_BY_KEY, CHARGE_VOID, PAYMENT_REFUND),
    description="Charges through the payment provider, refunds, voids.",
)
