"""
The checkout saga's outcomes: every test token, customer cancellation, the
operator's refund (`sagas compensate`; the admin's is tests/contexts/orders/test_admin.py),
and payments whose outcome is unknown (timeouts).
"""

from __future__ import annotations

import threading
from io import StringIO

import pytest
from django.core.management import call_command

from cleave import sagas as engine
from cleave.core.errors import Conflict
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import customer_headers, flows, published
from contexts.inventory.models import Reservation, StockItem
from contexts.notifications.models import Notification
from contexts.orders import commands, sagas
from contexts.orders.models import Order
from contexts.payments import providers
from contexts.payments.models import Payment
from tests.contexts.orders.conftest import add, checkout

pytestmark = [flows, pytest.mark.usefixtures("fresh_provider")]


@pytest.fixture
def fresh_provider():
    providers._provider.cache_clear()
    yield
    providers._provider.cache_clear()


def stock(sku):
    item = StockItem.objects.get(sku=sku)
    return item.on_hand, item.reserved


def notifications(customer_id):
    return list(
        Notification.objects.filter(customer_id=customer_id)
        .exclude(kind__in=("welcome", "verify_email"))  # the account's, not the order's
        .values_list("kind", flat=True)
    )


def order_of(response) -> Order:
    return Order.objects.get(pk=response.json()["order_id"])


def timeline(order: Order) -> list[tuple[str, str, str]]:
    rows = SagaStepLog.objects.using("orders").filter(saga_id=order.saga_id).order_by("id")
    return [(log.step, log.kind, log.status) for log in rows]


# --- every test token ends in its documented state ----------------------------------------


@pytest.mark.parametrize(
    ("token", "order_status", "reason", "payment_status", "notification"),
    [
        ("tok_visa", "confirmed", None, "captured", "order_confirmed"),
        ("tok_chargeDeclined", "cancelled", "payment_declined", "declined", "order_cancelled"),
        ("tok_timeout", "cancelled", "timeout", "failed", "order_cancelled"),
        ("tok_error", "cancelled", "payment_error", "failed", "order_cancelled"),
    ],
)
def test_each_test_token_ends_in_its_documented_order_payment_and_notification(
    api, shop, token, order_status, reason, payment_status, notification
):
    add(api, shop, shop.tee, 2)

    order = order_of(checkout(api, shop, token))

    assert (order.status, order.cancellation_reason) == (order_status, reason)
    payment = Payment.objects.get(pk=order.payment_id)
    assert payment.status == payment_status
    assert notifications(shop.customer.id) == [notification]
    on_hand, reserved = stock("TEE-1")
    assert reserved == 0
    assert on_hand == (8 if order_status == "confirmed" else 10)
    detail = api.get(f"/api/orders/{order.id}", headers=shop.headers).json()
    assert (detail["status"], detail["cancellation_reason"]) == (order_status, reason)
    paid = api.get(f"/api/payments/{order.payment_id}", headers=shop.headers).json()
    assert paid["status"] == payment_status


def test_a_timed_out_payment_is_settled_by_its_key_not_guessed(api, shop):
    add(api, shop, shop.mug, 1)

    order = order_of(checkout(api, shop, "tok_timeout"))

    assert ("process_payment", "query", "succeeded") not in timeline(order)
    assert timeline(order) == [
        ("place_order", "action", "succeeded"),
        ("validate_user", "action", "succeeded"),
        ("reserve_inventory", "action", "succeeded"),
        ("process_payment", "action", "error"),  # pending: outcome unknown
        ("process_payment", "query", "error"),  # still pending when asked
        ("process_payment", "compensation", "succeeded"),  # voided by key
        ("reserve_inventory", "compensation", "succeeded"),
        ("place_order", "compensation", "succeeded"),
    ]
    payment = Payment.objects.get(pk=order.payment_id)
    assert (payment.status, payment.failure_reason) == ("failed", "timeout")
    assert [e.data["reason"] for e in published("payments", "payment.failed")] == ["timeout"]


class CapturesThenTimesOut(providers.FakeProvider):
    """The provider takes the money, but its answer never arrives."""

    def charge(self, **kwargs):
        super().charge(**{**kwargs, "token": "tok_visa"})
        raise providers.ProviderTimeout("no answer")


def test_a_payment_captured_without_an_answer_is_refunded_and_the_order_cancelled(
    api, shop, settings
):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.CapturesThenTimesOut"
    add(api, shop, shop.tee, 1)

    order = order_of(checkout(api, shop, "tok_visa"))

    assert (order.status, order.cancellation_reason) == ("cancelled", "timeout")
    assert Payment.objects.get(pk=order.payment_id).status == "refunded"
    assert [e.type for e in published("payments")] == ["payment.completed", "payment.refunded"]
    assert stock("TEE-1") == (10, 0)


class HangingProvider(providers.FakeProvider):
    """Captures, but only after the saga has given up waiting (see the test)."""

    release = threading.Event()

    def charge(self, **kwargs):
        HangingProvider.release.wait(10)
        return super().charge(**kwargs)


def test_a_payment_step_past_its_timeout_is_voided_and_a_late_capture_refunded(
    api, shop, settings, monkeypatch, saga_steps
):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.HangingProvider"
    HangingProvider.release.clear()
    original = engine.on_timeout

    def on_timeout(**kwargs):
        try:
            original(**kwargs)  # settles the saga in the watchdog's thread
        finally:
            HangingProvider.release.set()  # ... and only then does the provider answer

    monkeypatch.setattr("cleave.sagas.monitor.on_timeout", on_timeout)
    saga_steps("checkout", "process_payment", timeout=0.2)
    add(api, shop, shop.tee, 1)

    order = order_of(checkout(api, shop, "tok_visa"))

    assert (order.status, order.cancellation_reason) == ("cancelled", "timeout")
    assert ("process_payment", "action", "timeout") in timeline(order)
    payment = Payment.objects.get(order_id=order.id)
    # voided while pending (the provider had not answered), then captured late: refunded
    assert payment.status == "refunded"
    assert stock("TEE-1") == (10, 0)
    assert notifications(shop.customer.id) == ["order_cancelled"]


# --- customer cancellation -----------------------------------------------------------------


class Deferred:
    """A runner that leaves sagas for later, as a busy or crashed process would."""

    scheduled: list = []

    def schedule(self, alias, saga_id):
        Deferred.scheduled.append(saga_id)


@pytest.fixture
def deferred(monkeypatch):
    Deferred.scheduled = []
    monkeypatch.setattr("cleave.sagas.scheduling.get_runner", Deferred)
    return Deferred


def cancel(api, shop, order_id, headers=None):
    return api.post(f"/api/orders/{order_id}/cancel", headers=headers or shop.headers)


def test_a_customer_cancels_a_pending_order_and_the_saga_compensates(api, shop, deferred):
    add(api, shop, shop.tee, 2)
    order = order_of(checkout(api, shop, "tok_visa"))
    assert order.status == "pending"

    response = cancel(api, shop, order.id)
    engine.run("orders", order.saga_id)  # the process that runs the saga gets to it

    assert response.status_code == 202
    assert response.json() == {
        "order_id": str(order.id),
        "status": "pending",
        "saga_id": str(order.saga_id),
    }
    order.refresh_from_db()
    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_request")
    assert not Payment.objects.filter(order_id=order.id, status="captured").exists()
    assert stock("TEE-1") == (10, 0)
    assert notifications(shop.customer.id) == ["order_cancelled"]


def test_a_cancellation_that_arrives_mid_checkout_refunds_the_payment(api, shop, saga_steps):
    add(api, shop, shop.tee, 1)
    original = sagas.process_payment

    def pay_then_customer_cancels(saga):
        result = original(saga)
        commands.order_request_cancel(customer_id=shop.customer.id, order_id=saga.data["order_id"])
        return result

    saga_steps("checkout", "process_payment", action=pay_then_customer_cancels)

    order = order_of(checkout(api, shop, "tok_visa"))

    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_request")
    assert Payment.objects.get(order_id=order.id).status == "refunded"
    assert stock("TEE-1") == (10, 0)


def test_a_confirmed_order_cannot_be_cancelled_by_the_customer(api, shop):
    add(api, shop, shop.mug, 1)
    order = order_of(checkout(api, shop, "tok_visa"))

    response = cancel(api, shop, order.id)

    assert response.status_code == 409
    assert response.json()["type"].endswith("order-confirmed")
    assert "customer service" in response.json()["detail"]
    order.refresh_from_db()
    assert order.status == "confirmed"


def test_cancelling_twice_is_accepted_and_another_reason_is_a_conflict(api, shop, deferred):
    add(api, shop, shop.mug, 1)
    pending = order_of(checkout(api, shop, "tok_visa"))
    assert cancel(api, shop, pending.id).status_code == 202
    engine.run("orders", pending.saga_id)
    assert cancel(api, shop, pending.id).status_code == 202
    assert cancel(api, shop, pending.id).json()["status"] == "cancelled"

    add(api, shop, shop.mug, 1)
    declined = order_of(checkout(api, shop, "tok_chargeDeclined"))
    engine.run("orders", declined.saga_id)
    response = cancel(api, shop, declined.id)
    assert response.status_code == 409
    assert response.json()["type"].endswith("order-cancelled")


def test_only_the_owner_may_cancel_an_order(api, shop):
    from uuid import uuid4

    add(api, shop, shop.mug, 1)
    order = order_of(checkout(api, shop, "tok_visa"))

    assert cancel(api, shop, order.id, customer_headers(uuid4())).status_code == 404
    assert api.post(f"/api/orders/{order.id}/cancel").status_code == 401
    assert cancel(api, shop, uuid4()).status_code == 404


# --- the operator's refund of a confirmed order -------------------------------------------------


def test_refunding_a_confirmed_order_compensates_its_saga(api, shop):
    add(api, shop, shop.tee, 3)
    order = order_of(checkout(api, shop, "tok_visa"))
    assert stock("TEE-1") == (7, 0)

    refunded = commands.order_refund(order_id=order.id)

    assert (refunded.status, refunded.cancellation_reason) == ("cancelled", "customer_request")
    assert Payment.objects.get(pk=order.payment_id).status == "refunded"
    assert Reservation.objects.get(pk=order.reservation_id).status == "returned"
    assert stock("TEE-1") == (10, 0)  # the goods never left: back on the shelf
    assert sorted(notifications(shop.customer.id)) == ["order_cancelled", "order_confirmed"]
    saga = SagaInstance.objects.using("orders").get(pk=order.saga_id)
    assert (saga.state, saga.failure_reason) == ("compensated", "customer_request")
    assert [step for step, kind, status in timeline(order) if kind == "compensation"] == [
        "confirm_order",
        "process_payment",
        "reserve_inventory",
        "place_order",
    ]


def test_an_order_whose_saga_was_pruned_is_not_refunded_and_says_why(api, shop):
    add(api, shop, shop.tee, 1)
    order = order_of(checkout(api, shop, "tok_visa"))
    SagaInstance.objects.using("orders").filter(pk=order.saga_id).delete()  # as `sagas prune`

    with pytest.raises(Conflict) as refused:
        commands.order_refund(order_id=order.id)

    assert refused.value.code == "saga-pruned"
    order.refresh_from_db()
    assert order.status == "confirmed"
    assert Payment.objects.get(pk=order.payment_id).status != "refunded"


def test_the_sagas_command_refunds_a_confirmed_order(api, shop):
    add(api, shop, shop.mug, 2)
    order = order_of(checkout(api, shop, "tok_visa"))
    out = StringIO()

    call_command("sagas", "compensate", str(order.saga_id), stdout=out)

    assert f"{order.saga_id}: compensated (customer_request)" in out.getvalue()
    order.refresh_from_db()
    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_request")
    assert Payment.objects.get(pk=order.payment_id).status == "refunded"
    assert stock("MUG-1") == (5, 0)
