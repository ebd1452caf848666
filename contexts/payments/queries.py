"""Read side of the payments context."""

from __future__ import annotations

from uuid import UUID

from cleave.core.errors import NotFound

from .models import Payment


def payment_get_for_customer(*, payment_id: UUID, customer_id: UUID) -> Payment:
    """A customer's own payment; another customer's is not found, not forbidden."""
    payment = Payment.objects.filter(pk=payment_id, customer_id=customer_id).first()
    if payment is None:
        raise NotFound(f"No payment {payment_id}.")
    return payment


def payment_get_by_key(*, idempotency_key: str) -> Payment:
    """The payment a charge with this idempotency key made (or is making)."""
    payment = Payment.objects.filter(idempotency_key=idempotency_key).first()
    if payment is None:
        raise NotFound(f"No payment was charged with idempotency key {idempotency_key!r}.")
    return payment
