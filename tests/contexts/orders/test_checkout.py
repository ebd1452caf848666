"""The checkout saga through the API, with every participant running in-process."""

from uuid import uuid4

import pytest

from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import customer_headers, flows, published
from contexts.inventory.models import StockItem
from contexts.orders import commands, sagas
from contexts.orders.models import Order
from contexts.payments.models import Payment
from contexts.users.commands import customer_block
from contexts.users.models import Customer
from tests.contexts.orders.conftest import add, checkout

pytestmark = flows


def _available(sku):
    item = StockItem.objects.get(sku=sku)
    return item.on_hand - item.reserved


def _timeline(saga_id):
    return [
        (log.step, log.kind, log.status)
        for log in SagaStepLog.objects.using("orders").filter(saga_id=saga_id).order_by("id")
    ]


def test_an_approved_payment_confirms_the_order_and_commits_the_stock(api, shop):
    add(api, shop, shop.tee, 2)
    add(api, shop, shop.mug, 1)

    response = checkout(api, shop, "tok_visa")

    assert response.status_code == 202
    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.status == "confirmed"
    assert str(order.total) == "48.30"
    assert StockItem.objects.get(sku="TEE-1").on_hand == 8
    assert StockItem.objects.get(sku="MUG-1").on_hand == 4
    assert _available("TEE-1") == 8
    assert Payment.objects.get(pk=order.payment_id).status == "captured"
    saga = SagaInstance.objects.using("orders").get(pk=order.saga_id)
    assert saga.state == "completed"
    assert [step for step, kind, status in _timeline(saga.id)] == [
        "place_order",
        "validate_user",
        "reserve_inventory",
        "process_payment",
        "confirm_order",
    ]
    assert api.get("/api/orders/cart", headers=shop.headers).json()["items"] == []


def test_one_checkout_keeps_one_correlation_id_across_every_context(api, shop):
    add(api, shop, shop.tee, 1)
    order_id = checkout(api, shop).json()["order_id"]

    placed = published("orders", "order.placed")[-1]
    chain = [
        placed,
        published("inventory", "inventory.reserved")[-1],
        published("payments", "payment.completed")[-1],
        published("inventory", "inventory.committed")[-1],
        published("orders", "order.confirmed")[-1],
    ]
    assert placed.data["order_id"] == order_id
    assert {envelope.correlation_id for envelope in chain} == {placed.correlation_id}


def test_a_declined_payment_cancels_the_order_and_releases_the_reservation(api, shop):
    add(api, shop, shop.tee, 3)

    response = checkout(api, shop, "tok_chargeDeclined")

    order = Order.objects.get(pk=response.json()["order_id"])
    assert order.status == "cancelled"
    assert order.cancellation_reason == "payment_declined"
    assert _available("TEE-1") == 10
    assert StockItem.objects.get(sku="TEE-1").on_hand == 10
    assert Payment.objects.get(pk=order.payment_id).status == "declined"
    saga = SagaInstance.objects.using("orders").get(pk=order.saga_id)
    assert saga.state == "compensated"
    compensations = [step for step, kind, status in _timeline(saga.id) if kind == "compensation"]
    assert compensations == ["reserve_inventory", "place_order"]  # reverse order
    assert [e.data["reason"] for e in published("orders", "order.cancelled")] == [
        "payment_declined"
    ]


@pytest.mark.parametrize(
    ("token", "reason", "payment_status"),
    [("tok_error", "payment_error", "failed"), ("tok_timeout", "timeout", "failed")],
)
def test_a_failing_provider_cancels_with_its_reason(api, shop, token, reason, payment_status):
    add(api, shop, shop.mug, 1)
    order = Order.objects.get(pk=checkout(api, shop, token).json()["order_id"])
    assert (order.status, order.cancellation_reason) == ("cancelled", reason)
    assert Payment.objects.get(pk=order.payment_id).status == payment_status
    assert _available("MUG-1") == 5


def test_too_little_stock_cancels_the_order_as_out_of_stock(api, shop):
    add(api, shop, shop.mug, 6)
    order = Order.objects.get(pk=checkout(api, shop).json()["order_id"])
    assert (order.status, order.cancellation_reason) == ("cancelled", "out_of_stock")
    assert _available("MUG-1") == 5
    assert not Payment.objects.filter(order_id=order.id).exists()


def test_a_blocked_customers_token_is_refused_at_once(api, shop):
    add(api, shop, shop.mug, 1)
    customer_block(customer_id=shop.customer.id)

    response = checkout(api, shop)

    assert response.status_code == 401, response.content
    assert response.json()["detail"] == "The token was revoked."
    assert not Order.objects.exists()
    assert _available("MUG-1") == 5


def test_a_customer_the_users_context_calls_blocked_is_cancelled_as_customer_blocked(api, shop):
    # blocked in the users table only (no event yet reached orders): the
    # checkout's first step asks users and gets the truth
    add(api, shop, shop.mug, 1)
    Customer.objects.using("users").filter(pk=shop.customer.id).update(status="blocked")

    order = Order.objects.get(pk=checkout(api, shop).json()["order_id"])

    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_blocked")
    assert _available("MUG-1") == 5


def test_a_checkout_running_when_the_customer_is_blocked_ends_cancelled(api, shop, saga_steps):
    add(api, shop, shop.mug, 1)
    original = sagas.reserve_inventory

    def reserve_then_blocked(saga):
        result = original(saga)
        customer_block(customer_id=shop.customer.id)  # an operator, meanwhile
        return result

    saga_steps("checkout", "reserve_inventory", action=reserve_then_blocked)

    order = Order.objects.get(pk=checkout(api, shop).json()["order_id"])

    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_blocked")
    assert _available("MUG-1") == 5
    assert not Payment.objects.filter(order_id=order.id, status="captured").exists()


def test_an_empty_cart_cannot_be_checked_out(api, shop):
    response = checkout(api, shop)
    assert response.status_code == 400
    assert response.json()["type"].endswith("empty-cart")


def test_checkout_needs_a_payment_method(api, shop):
    add(api, shop, shop.mug, 1)
    response = api.post("/api/orders/checkout", {}, format="json", headers=shop.headers)
    assert response.status_code == 400
    assert "payment_method" in response.json()["errors"]


def test_the_same_idempotency_key_gives_one_order_and_one_charge(api, shop):
    add(api, shop, shop.tee, 1)
    first = checkout(api, shop, key="checkout-123").json()
    add(api, shop, shop.tee, 1)  # a retry must not turn this cart into a second order
    second = checkout(api, shop, key="checkout-123").json()

    assert first["order_id"] == second["order_id"]
    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1


def test_a_racer_with_the_same_key_gets_the_first_order_not_an_empty_cart(api, shop, monkeypatch):
    # given the first checkout with a key, and a racer that looked the key up
    # before the first committed (then waited for the cart the first emptied)
    add(api, shop, shop.tee, 1)
    first = checkout(api, shop, key="race-1")
    looked_up = commands._order_by_key
    calls = []

    def before_the_first_committed(customer_id, key):
        calls.append(key)
        return None if len(calls) == 1 else looked_up(customer_id, key)

    monkeypatch.setattr(commands, "_order_by_key", before_the_first_committed)

    # when the racer goes on
    racer = checkout(api, shop, key="race-1")

    # then it gets the first request's answer: one order, one charge
    assert first.status_code == 202, first.content
    assert racer.status_code == 202, racer.content
    assert racer.json()["order_id"] == first.json()["order_id"]
    assert Order.objects.count() == 1
    assert Payment.objects.count() == 1


def test_orders_are_listed_and_shown_only_to_their_customer(api, shop):
    add(api, shop, shop.tee, 1)
    order_id = checkout(api, shop).json()["order_id"]

    page = api.get("/api/orders/", headers=shop.headers).json()
    assert [o["id"] for o in page["results"]] == [order_id]
    detail = api.get(f"/api/orders/{order_id}", headers=shop.headers).json()
    assert detail["lines"][0]["sku"] == "TEE-1"
    assert set(detail) >= {
        "id",
        "status",
        "lines",
        "total",
        "currency",
        "payment_id",
        "cancellation_reason",
        "created_at",
    }
    stranger = customer_headers(uuid4())
    assert api.get(f"/api/orders/{order_id}", headers=stranger).status_code == 404
    assert api.get("/api/orders/", headers=stranger).json()["count"] == 0


def test_a_checkout_key_reused_with_another_payment_method_is_a_409(api, shop):
    add(api, shop, shop.tee, 1)
    first = checkout(api, shop, "tok_visa", key="buy-1")
    again = checkout(api, shop, "tok_visa", key="buy-1")
    other = checkout(api, shop, "tok_chargeDeclined", key="buy-1")

    assert (first.status_code, again.status_code) == (202, 202), again.content
    assert again.json()["order_id"] == first.json()["order_id"]
    assert other.status_code == 409, other.content
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert Order.objects.count() == 1
