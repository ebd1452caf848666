"""Write side of the payments context."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave.api import ApplicationError, NotFound
from cleave.events import publish

from . import providers
from .models import Payment

ALIAS = "payments"

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # what DecimalField(max_digits=12, decimal_places=2) holds
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_METHOD_LENGTH = Payment._meta.get_field("method").max_length
MAX_KEY_LENGTH = Payment._meta.get_field("idempotency_key").max_length


class ProviderUnavailable(ApplicationError):
    status = 503
    code = "payment-provider-unavailable"
    title = "Payment provider unavailable"


def _invalid(field: str, message: str) -> ApplicationError:
    return ApplicationError(
        message, code="validation-error", title="Invalid input", errors={field: [message]}
    )


def _valid_amount(amount: Decimal | str | int) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise _invalid("amount", "The amount must be a decimal number.") from None
    if not value.is_finite() or value <= 0:
        raise _invalid("amount", "The amount must be greater than zero.")
    if value != value.quantize(CENT):
        raise _invalid("amount", "The amount may have at most two decimal places.")
    if value > MAX_AMOUNT:
        raise _invalid("amount", f"The amount may not exceed {MAX_AMOUNT}.")
    return value.quantize(CENT)


def _valid_currency(currency: str) -> str:
    if not CURRENCY_RE.match(currency or ""):
        raise _invalid("currency", "The currency must be a three-letter ISO 4217 code.")
    return currency


def _event_data(payment: Payment) -> dict:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "amount": payment.amount,
        "currency": payment.currency,
    }


def _by_key(idempotency_key: str) -> Payment | None:
    return Payment.objects.using(ALIAS).filter(idempotency_key=idempotency_key).first()


def _ask_provider(
    *, payment_method: str, amount: Decimal, currency: str, reference: str
) -> tuple[str, str, str]:
    """Charge through the provider; return (status, failure_reason, provider_reference)."""
    try:
        result = providers.get_provider().charge(
            token=payment_method, amount=amount, currency=currency, reference=reference
        )
    except providers.ProviderTimeout:
        return Payment.Status.FAILED, Payment.FailureReason.TIMEOUT, ""
    except providers.ProviderError:
        return Payment.Status.FAILED, Payment.FailureReason.ERROR, ""
    if result.approved:
        return Payment.Status.CAPTURED, "", result.reference
    reason = result.decline_reason or Payment.FailureReason.DECLINED
    if reason not in Payment.FailureReason.values:
        reason = Payment.FailureReason.DECLINED
    return Payment.Status.DECLINED, reason, result.reference


def payment_charge(
    *,
    order_id: UUID,
    customer_id: UUID,
    amount: Decimal | str,
    currency: str,
    payment_method: str,
    idempotency_key: str | None = None,
) -> tuple[Payment, bool]:
    """
    Charge `amount` for an order; return the payment and whether it is new.

    A repeated `idempotency_key` returns the first payment without charging
    again. The provider is called outside any transaction (no lock is held
    while it answers); the outcome is then stored and published atomically:
    `payment.completed` when captured, `payment.failed` otherwise.
    """
    amount = _valid_amount(amount)
    currency = _valid_currency(currency)
    if not payment_method or len(payment_method) > MAX_METHOD_LENGTH:
        raise _invalid(
            "payment_method", f"The payment method must be 1 to {MAX_METHOD_LENGTH} characters."
        )
    idempotency_key = idempotency_key or None
    if idempotency_key is not None:
        if len(idempotency_key) > MAX_KEY_LENGTH:
            raise _invalid(
                "Idempotency-Key", f"The key may be at most {MAX_KEY_LENGTH} characters."
            )
        existing = _by_key(idempotency_key)
        if existing is not None:
            return existing, False

    payment_id = uuid.uuid4()
    status, failure_reason, provider_reference = _ask_provider(
        payment_method=payment_method,
        amount=amount,
        currency=currency,
        # the key lets a real provider recognise a retried charge
        reference=idempotency_key or str(payment_id),
    )
    try:
        with transaction.atomic(using=ALIAS):
            payment = Payment.objects.using(ALIAS).create(
                id=payment_id,
                order_id=order_id,
                customer_id=customer_id,
                amount=amount,
                currency=currency,
                method=payment_method,
                status=status,
                failure_reason=failure_reason,
                provider_reference=provider_reference,
                idempotency_key=idempotency_key,
            )
            if status == Payment.Status.CAPTURED:
                publish("payment.completed", _event_data(payment))
            else:
                publish("payment.failed", {**_event_data(payment), "reason": failure_reason})
    except IntegrityError:
        # a concurrent request with the same key stored its payment first
        existing = _by_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return existing, False
    return payment, True


def payment_refund(*, payment_id: UUID) -> Payment:
    """
    Refund a captured payment in full and publish `payment.refunded`.

    A refunded payment is returned as is; so is a declined or failed one, as
    there is nothing to refund.
    """
    payment = Payment.objects.using(ALIAS).filter(pk=payment_id).first()
    if payment is None:
        raise NotFound(f"No payment {payment_id}.")
    if payment.status != Payment.Status.CAPTURED:
        return payment
    try:
        # Outside the transaction: no lock is held while the provider answers.
        # Two concurrent refunds may both get here; providers treat a repeated
        # refund of one reference as one refund, and the row lock below lets
        # only one of them record it.
        providers.get_provider().refund(reference=payment.provider_reference, amount=payment.amount)
    except providers.ProviderError as exc:
        raise ProviderUnavailable(
            f"The payment provider could not refund payment {payment_id}; try again."
        ) from exc
    with transaction.atomic(using=ALIAS):
        payment = Payment.objects.using(ALIAS).select_for_update().get(pk=payment_id)
        if payment.status == Payment.Status.CAPTURED:
            payment.status = Payment.Status.REFUNDED
            payment.refunded_at = timezone.now()
            payment.save(using=ALIAS, update_fields=["status", "refunded_at", "updated_at"])
            publish("payment.refunded", _event_data(payment))
    return payment
