"""Write side of the payments context."""

from __future__ import annotations

import logging
import re
from decimal import Decimal, InvalidOperation
from uuid import UUID

from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave.core.errors import Conflict, NotFound, Unavailable, invalid
from cleave.messaging.publish import publish
from contracts import payments

from . import providers
from .apps import ALIAS
from .models import Payment

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
MAX_AMOUNT = Decimal("9999999999.99")  # what DecimalField(max_digits=12, decimal_places=2) holds
CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
MAX_METHOD_LENGTH = Payment._meta.get_field("method").max_length
MAX_KEY_LENGTH = Payment._meta.get_field("idempotency_key").max_length


class ProviderUnavailable(Unavailable):
    code = "payment-provider-unavailable"
    title = "Payment provider unavailable"


def _valid_amount(amount: Decimal | str | int) -> Decimal:
    try:
        value = Decimal(str(amount))
    except InvalidOperation:
        raise invalid("amount", "The amount must be a decimal number.") from None
    if not value.is_finite() or value <= 0:
        raise invalid("amount", "The amount must be greater than zero.")
    if value != value.quantize(CENT):
        raise invalid("amount", "The amount may have at most two decimal places.")
    if value > MAX_AMOUNT:
        raise invalid("amount", f"The amount may not exceed {MAX_AMOUNT}.")
    return value.quantize(CENT)


def _valid_currency(currency: str) -> str:
    if not CURRENCY_RE.match(currency or ""):
        raise invalid("currency", "The currency must be a three-letter ISO 4217 code.")
    return currency


def _event_data(payment: Payment) -> dict:
    return {
        "payment_id": payment.id,
        "order_id": payment.order_id,
        "customer_id": payment.customer_id,
        "amount": payment.amount,
        "currency": payment.currency,
    }


def _valid_method(payment_method: str) -> str:
    if not payment_method or len(payment_method) > MAX_METHOD_LENGTH:
        raise invalid(
            "payment_method", f"The payment method must be 1 to {MAX_METHOD_LENGTH} characters."
        )
    return payment_method


def _valid_key(idempotency_key: str | None, field: str = "Idempotency-Key") -> str | None:
    idempotency_key = idempotency_key or None
    if idempotency_key is not None and len(idempotency_key) > MAX_KEY_LENGTH:
        raise invalid(field, f"The key may be at most {MAX_KEY_LENGTH} characters.")
    return idempotency_key


def _by_key(idempotency_key: str) -> Payment | None:
    return Payment.objects.filter(idempotency_key=idempotency_key).first()


def _reference(payment: Payment) -> str:
    """Our reference for a payment at the provider: its idempotency key, else its id."""
    return payment.idempotency_key or str(payment.id)


def _ask_provider(
    *, payment_method: str, amount: Decimal, currency: str, reference: str
) -> tuple[str, str, str]:
    """
    Charge through the provider; return (status, failure_reason, provider_reference).

    A timeout answers `pending`: the provider may or may not have charged, and
    only asking it later (`payment_void`) can tell.
    """
    try:
        result = providers.get_provider().charge(
            token=payment_method, amount=amount, currency=currency, reference=reference
        )
    except providers.ProviderTimeout:
        return Payment.Status.PENDING, Payment.FailureReason.TIMEOUT, ""
    except providers.ProviderError:
        return Payment.Status.FAILED, Payment.FailureReason.ERROR, ""
    return _from_result(result)


def _from_result(result: providers.ProviderResult) -> tuple[str, str, str]:
    if result.approved:
        return Payment.Status.CAPTURED, "", result.reference
    reason = result.decline_reason or Payment.FailureReason.DECLINED
    if reason not in Payment.FailureReason.values:
        reason = Payment.FailureReason.DECLINED
    return Payment.Status.DECLINED, reason, result.reference


def _publish_outcome(payment: Payment) -> None:
    if payment.status == Payment.Status.CAPTURED:
        publish(payments.PAYMENT_COMPLETED, _event_data(payment))
    elif payment.status in (Payment.Status.DECLINED, Payment.Status.FAILED):
        publish(payments.PAYMENT_FAILED, {**_event_data(payment), "reason": payment.failure_reason})


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

    The attempt is stored `pending` before the provider is asked, so a
    repeated `idempotency_key` (a retry, a crashed caller resuming, a late
    duplicate) finds it and never charges again, and a caller that gave up can
    settle it (`payment_void`). The provider is called outside any transaction;
    the outcome is then stored and published atomically: `payment.completed`
    when captured, `payment.failed` when declined or failed. A provider
    timeout leaves the payment `pending` (outcome unknown).
    """
    amount = _valid_amount(amount)
    currency = _valid_currency(currency)
    payment_method = _valid_method(payment_method)
    idempotency_key = _valid_key(idempotency_key)
    try:
        # a repeated key fails on the unique index: the first attempt is returned
        with transaction.atomic(using=ALIAS):
            payment = Payment.objects.create(
                order_id=order_id,
                customer_id=customer_id,
                amount=amount,
                currency=currency,
                method=payment_method,
                status=Payment.Status.PENDING,
                idempotency_key=idempotency_key,
            )
    except IntegrityError:
        # a repeated request, or a concurrent one with the same key, stored its attempt first
        existing = _by_key(idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        first = (
            existing.order_id,
            existing.customer_id,
            existing.amount,
            existing.currency,
            existing.method,
        )
        if first != (UUID(str(order_id)), UUID(str(customer_id)), amount, currency, payment_method):
            raise Conflict(
                "This Idempotency-Key was already used for a different charge.",
                code="idempotency-key-reused",
            ) from None
        return existing, False
    status, failure_reason, provider_reference = _ask_provider(
        payment_method=payment_method,
        amount=amount,
        currency=currency,
        # the key lets the provider recognise a retried charge
        reference=_reference(payment),
    )
    return _settle(payment, status, failure_reason, provider_reference), True


def _settle(payment: Payment, status: str, failure_reason: str, provider_reference: str) -> Payment:
    """Record the provider's answer on a pending payment, unless it was settled meanwhile."""
    now = timezone.now()
    with transaction.atomic(using=ALIAS):
        # conditional: a void that settled the payment meanwhile wins
        settled = Payment.objects.filter(pk=payment.id, status=Payment.Status.PENDING).update(
            status=status,
            failure_reason=failure_reason,
            provider_reference=provider_reference,
            updated_at=now,
        )
        if settled:
            payment.status = status
            payment.failure_reason = failure_reason
            payment.provider_reference = provider_reference
            payment.updated_at = now
            _publish_outcome(payment)
            return payment
    payment = Payment.objects.get(pk=payment.id)
    if status == Payment.Status.CAPTURED:
        # The caller gave up and voided this payment while the provider was
        # still answering, and the provider did capture: give the money back.
        return _refund_late_capture(payment, provider_reference)
    return payment


def _refund_late_capture(payment: Payment, provider_reference: str) -> Payment:
    logger.warning("Payment %s was captured after it was voided; refunding it", payment.id)
    with transaction.atomic(using=ALIAS):
        payment = Payment.objects.select_for_update().get(pk=payment.id)
        payment.status = Payment.Status.CAPTURED
        payment.provider_reference = provider_reference
        payment.failure_reason = ""
        payment.save(
            update_fields=["status", "failure_reason", "provider_reference", "updated_at"],
        )
        publish(payments.PAYMENT_COMPLETED, _event_data(payment))
    return payment_refund(payment_id=payment.id)


def payment_void(
    *,
    idempotency_key: str,
    order_id: UUID,
    customer_id: UUID,
    amount: Decimal | str,
    currency: str,
    payment_method: str,
) -> Payment:
    """
    Settle the charge made (or being made) with `idempotency_key` by a caller that gave up on it.

    Captured: refunded. Pending (the provider timed out, or the charging
    process died): the provider is asked what happened; captured there means
    refunded here, anything else `failed`. Not there at all: a `failed`
    payment (reason `voided`) takes the key, so a charge arriving late with it
    is answered with that and never reaches the provider. Declined, failed or
    refunded: returned unchanged. Safe to repeat.
    """
    amount = _valid_amount(amount)
    currency = _valid_currency(currency)
    payment_method = _valid_method(payment_method)
    key = _valid_key(idempotency_key, "idempotency_key")
    if key is None:
        raise invalid("idempotency_key", "The charge's idempotency key is required.")
    payment = _by_key(key)
    if payment is None:
        try:
            with transaction.atomic(using=ALIAS):
                return Payment.objects.create(
                    order_id=order_id,
                    customer_id=customer_id,
                    amount=amount,
                    currency=currency,
                    method=payment_method,
                    status=Payment.Status.FAILED,
                    failure_reason=Payment.FailureReason.VOIDED,
                    idempotency_key=key,
                )
        except IntegrityError:  # the charge itself arrived meanwhile
            payment = _by_key(key)
    if payment.status == Payment.Status.PENDING:
        payment = _resolve_pending(payment)
    if payment.status == Payment.Status.CAPTURED:
        return payment_refund(payment_id=payment.id)
    return payment


def _resolve_pending(payment: Payment) -> Payment:
    """Ask the provider what became of a pending payment and record it."""
    try:
        result = providers.get_provider().lookup(reference=_reference(payment))
    except providers.ProviderError as exc:
        raise ProviderUnavailable(
            f"The payment provider could not say what became of payment {payment.id}; try again."
        ) from exc
    if result is None:
        status, failure_reason, provider_reference = (
            Payment.Status.FAILED,
            payment.failure_reason or Payment.FailureReason.TIMEOUT,
            "",
        )
    else:
        status, failure_reason, provider_reference = _from_result(result)
    with transaction.atomic(using=ALIAS):
        payment = Payment.objects.select_for_update().get(pk=payment.id)
        if payment.status != Payment.Status.PENDING:
            return payment  # the charging call settled it meanwhile
        payment.status = status
        payment.failure_reason = failure_reason
        payment.provider_reference = provider_reference
        payment.save(
            update_fields=["status", "failure_reason", "provider_reference", "updated_at"],
        )
        _publish_outcome(payment)
    return payment


def payment_refund(*, payment_id: UUID) -> Payment:
    """
    Refund a captured payment in full and publish `payment.refunded`.

    A refunded payment is returned as is; so is a declined or failed one, as
    there is nothing to refund.
    """
    payment = Payment.objects.filter(pk=payment_id).first()
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
        payment = Payment.objects.select_for_update().get(pk=payment_id)
        if payment.status == Payment.Status.CAPTURED:
            payment.status = Payment.Status.REFUNDED
            payment.refunded_at = timezone.now()
            payment.save(update_fields=["status", "refunded_at", "updated_at"])
            publish(payments.PAYMENT_REFUNDED, _event_data(payment))
    return payment
