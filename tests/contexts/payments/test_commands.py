import uuid
from decimal import Decimal

import pytest
from django.db import connections

from cleave.core.errors import ApplicationError, Conflict, NotFound
from cleave.http.problems import status_for
from cleave.testing import flows, published, unit
from contexts.payments import commands
from contexts.payments.models import Payment
from contexts.payments.providers import FakeProvider, ProviderError, ProviderTimeout
from tests.contexts.payments.factories import PaymentFactory


def charge(payment_method="tok_visa", **overrides):
    arguments = {
        "order_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "amount": Decimal("39.80"),
        "currency": "EUR",
        "payment_method": payment_method,
        **overrides,
    }
    return commands.payment_charge(**arguments)


@unit
def test_an_approved_charge_is_captured_and_publishes_payment_completed():
    payment, created = charge(amount="39.80")

    assert created
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    assert payment.amount == Decimal("39.80")
    assert payment.failure_reason == ""
    assert payment.provider_reference.startswith("fake_ch_")
    [event] = published("payments", "payment.completed")
    assert event.data == {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "customer_id": str(payment.customer_id),
        "amount": "39.80",
        "currency": "EUR",
    }
    assert published("payments", "payment.failed") == []


@unit
@pytest.mark.parametrize(
    ("token", "status", "reason"),
    [
        ("tok_chargeDeclined", Payment.Status.DECLINED, "declined"),
        ("tok_unknown", Payment.Status.DECLINED, "invalid_method"),
        ("tok_error", Payment.Status.FAILED, "error"),
    ],
)
def test_a_charge_that_does_not_go_through_publishes_payment_failed_with_the_reason(
    token, status, reason
):
    payment, created = charge(token)

    assert created
    payment.refresh_from_db()
    assert payment.status == status
    assert payment.failure_reason == reason
    [event] = published("payments", "payment.failed")
    assert event.data["payment_id"] == str(payment.id)
    assert event.data["reason"] == reason
    assert published("payments", "payment.completed") == []


@unit
def test_a_provider_timeout_leaves_the_payment_pending_and_publishes_nothing():
    payment, created = charge("tok_timeout", idempotency_key="k-timeout")

    assert created
    payment.refresh_from_db()
    assert (payment.status, payment.failure_reason) == ("pending", "timeout")
    assert published("payments") == []


@unit
def test_a_repeated_idempotency_key_returns_the_first_payment_without_charging_again():
    same = {"order_id": uuid.uuid4(), "customer_id": uuid.uuid4()}
    first, created_first = charge(idempotency_key="order-1-charge", **same)
    again, created_again = charge(idempotency_key="order-1-charge", **same)

    assert created_first and not created_again
    assert again.pk == first.pk
    assert again.status == Payment.Status.CAPTURED
    # the key once more, for another charge: refused, and nothing is charged
    with pytest.raises(Conflict) as refused:
        charge("tok_chargeDeclined", idempotency_key="order-1-charge", **same)
    assert refused.value.code == "idempotency-key-reused"
    assert Payment.objects.using("payments").count() == 1
    assert len(published("payments")) == 1


@unit
def test_charges_without_a_key_are_independent():
    charge()
    charge()
    assert Payment.objects.using("payments").count() == 2


@unit
@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("amount", {"amount": Decimal("0")}),
        ("amount", {"amount": Decimal("-5.00")}),
        ("amount", {"amount": "1.005"}),
        ("amount", {"amount": "lots"}),
        ("amount", {"amount": Decimal("NaN")}),
        ("amount", {"amount": Decimal("10000000000.00")}),
        ("currency", {"currency": "euro"}),
        ("payment_method", {"payment_method": ""}),
        ("payment_method", {"payment_method": "t" * 101}),
        ("Idempotency-Key", {"idempotency_key": "k" * 256}),
    ],
)
def test_invalid_charges_are_refused_with_400_and_nothing_is_stored(field, overrides):
    with pytest.raises(ApplicationError) as refused:
        charge(**overrides)

    assert status_for(refused.value) == 400
    assert field in refused.value.errors
    assert Payment.objects.using("payments").count() == 0
    assert published("payments") == []


class SpyProvider(FakeProvider):
    """Remembers whether the payments database was inside a transaction when called."""

    in_transaction: list[bool] = []

    def charge(self, **kwargs):
        SpyProvider.in_transaction.append(connections["payments"].in_atomic_block)
        return super().charge(**kwargs)


@flows
def test_the_provider_is_called_outside_any_transaction(settings):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.SpyProvider"
    SpyProvider.in_transaction.clear()

    charge()

    assert SpyProvider.in_transaction == [False]


class CountingProvider(FakeProvider):
    charges = 0

    def charge(self, **kwargs):
        CountingProvider.charges += 1
        return super().charge(**kwargs)


@flows
def test_a_concurrent_charge_with_the_same_key_returns_the_payment_stored_first(
    settings, monkeypatch
):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.CountingProvider"
    CountingProvider.charges = 0
    # the racing request stored its attempt first: our insert meets its key
    first = PaymentFactory(idempotency_key="race-key", amount=Decimal("39.80"), currency="EUR")
    real, calls = commands._by_key, []

    def by_key(key):
        calls.append(key)
        return real(key)

    monkeypatch.setattr(commands, "_by_key", by_key)

    payment, created = charge(
        first.method,
        idempotency_key="race-key",
        order_id=first.order_id,
        customer_id=first.customer_id,
    )

    assert not created
    assert payment.pk == first.pk
    assert calls == ["race-key"]  # looked up only once the insert lost to the unique key
    assert CountingProvider.charges == 0
    assert published("payments") == []


@unit
def test_refunding_a_captured_payment_marks_it_refunded_and_publishes_payment_refunded():
    payment, _ = charge()

    refunded = commands.payment_refund(payment_id=payment.id)

    assert refunded.status == Payment.Status.REFUNDED
    assert refunded.refunded_at is not None
    [event] = published("payments", "payment.refunded")
    assert event.data == {
        "payment_id": str(payment.id),
        "order_id": str(payment.order_id),
        "customer_id": str(payment.customer_id),
        "amount": "39.80",
        "currency": "EUR",
    }


@unit
def test_refunding_twice_refunds_once():
    payment, _ = charge()

    commands.payment_refund(payment_id=payment.id)
    again = commands.payment_refund(payment_id=payment.id)

    assert again.status == Payment.Status.REFUNDED
    assert len(published("payments", "payment.refunded")) == 1


@unit
@pytest.mark.parametrize("status", [Payment.Status.DECLINED, Payment.Status.FAILED])
def test_a_payment_that_was_never_captured_has_nothing_to_refund(status):
    payment = PaymentFactory(status=status, failure_reason="declined")

    unchanged = commands.payment_refund(payment_id=payment.id)

    assert unchanged.status == status
    assert unchanged.refunded_at is None
    assert published("payments", "payment.refunded") == []


@unit
def test_refunding_an_unknown_payment_is_not_found():
    with pytest.raises(NotFound):
        commands.payment_refund(payment_id=uuid.uuid4())


class BrokenRefundProvider(FakeProvider):
    def refund(self, *, reference, amount):
        raise ProviderError("down")


@unit
def test_a_refund_the_provider_fails_leaves_the_payment_captured(settings):
    payment = PaymentFactory()
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.BrokenRefundProvider"

    with pytest.raises(commands.ProviderUnavailable) as refused:
        commands.payment_refund(payment_id=payment.id)

    assert status_for(refused.value) == 503
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED
    assert published("payments", "payment.refunded") == []


# --- voiding a charge the caller gave up on ---------------------------------------------


def void(key="saga:1:process_payment", **overrides):
    arguments = {
        "idempotency_key": key,
        "order_id": uuid.uuid4(),
        "customer_id": uuid.uuid4(),
        "amount": Decimal("39.80"),
        "currency": "EUR",
        "payment_method": "tok_visa",
        **overrides,
    }
    return commands.payment_void(**arguments)


@unit
def test_voiding_a_captured_charge_refunds_it():
    payment, _ = charge(idempotency_key="k1")

    voided = void("k1")

    assert voided.pk == payment.pk
    assert voided.status == Payment.Status.REFUNDED
    assert len(published("payments", "payment.refunded")) == 1


@unit
def test_voiding_a_pending_charge_the_provider_never_took_fails_it_with_timeout():
    payment, _ = charge("tok_timeout", idempotency_key="k2")

    voided = void("k2")

    assert voided.pk == payment.pk
    assert (voided.status, voided.failure_reason) == ("failed", "timeout")
    [event] = published("payments", "payment.failed")
    assert event.data["reason"] == "timeout"


class CapturesThenTimesOut(FakeProvider):
    """The provider takes the money but its answer never arrives."""

    def charge(self, **kwargs):
        super().charge(**{**kwargs, "token": "tok_visa"})
        raise ProviderTimeout("no answer")


@unit
def test_voiding_a_pending_charge_the_provider_did_capture_refunds_it(settings):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.CapturesThenTimesOut"
    payment, _ = charge(idempotency_key="k3")
    assert payment.status == Payment.Status.PENDING

    voided = void("k3")

    assert voided.status == Payment.Status.REFUNDED
    assert voided.provider_reference.startswith("fake_ch_")
    assert [e.type for e in published("payments")] == ["payment.completed", "payment.refunded"]


@unit
def test_voiding_a_key_no_charge_arrived_with_fences_it_against_a_late_charge():
    same = {"order_id": uuid.uuid4(), "customer_id": uuid.uuid4()}
    voided = void("k4", **same)
    late, created = charge(idempotency_key="k4", **same)

    assert (voided.status, voided.failure_reason) == ("failed", "voided")
    assert not created
    assert late.pk == voided.pk
    assert Payment.objects.using("payments").count() == 1
    assert published("payments") == []


class VoidedWhileAnswering(FakeProvider):
    """The caller gives up and voids the charge while the provider is still capturing it."""

    def charge(self, *, reference, **kwargs):
        result = super().charge(reference=reference, **kwargs)
        pending = Payment.objects.using("payments").get(idempotency_key=reference)
        Payment.objects.using("payments").filter(pk=pending.pk).update(
            status=Payment.Status.FAILED, failure_reason=Payment.FailureReason.TIMEOUT
        )
        return result


@flows
def test_a_capture_that_arrives_after_the_charge_was_voided_is_refunded(settings):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.VoidedWhileAnswering"

    payment, _ = charge(idempotency_key="k5")

    payment.refresh_from_db()
    assert payment.status == Payment.Status.REFUNDED
    assert [e.type for e in published("payments")] == ["payment.completed", "payment.refunded"]


@unit
@pytest.mark.parametrize("status", [Payment.Status.DECLINED, Payment.Status.REFUNDED])
def test_voiding_a_settled_charge_changes_nothing(status):
    PaymentFactory(status=status, idempotency_key="k6")

    assert void("k6").status == status
    assert published("payments") == []


@unit
def test_voiding_twice_is_harmless():
    charge(idempotency_key="k7")

    assert void("k7").status == void("k7").status == Payment.Status.REFUNDED
    assert len(published("payments", "payment.refunded")) == 1


class LookupFails(FakeProvider):
    def lookup(self, *, reference):
        raise ProviderError("down")


@unit
def test_a_pending_charge_stays_pending_when_the_provider_cannot_be_asked(settings):
    charge("tok_timeout", idempotency_key="k8")
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.LookupFails"

    with pytest.raises(commands.ProviderUnavailable):
        void("k8")

    assert Payment.objects.using("payments").get(idempotency_key="k8").status == "pending"
