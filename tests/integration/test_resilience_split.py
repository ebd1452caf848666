"""
Resilience with real processes: a split of four groups (shop: users, orders,
notifications, analytics; catalog; inventory; payments), each a gunicorn
server, and a context stopped, hung (SIGSTOP) or restarted while customers
shop; events between groups go over RabbitMQ (a Celery worker per group that
subscribes). The settings shorten the waits (saga backoff, breaker reset,
deadline) so that each story takes seconds; the logic is the production one.
"""

from __future__ import annotations

import time

import pytest
import requests

from tests.support.live import wait_until
from tests.support.split import FAST, Customer, SplitSystem, available

pytestmark = pytest.mark.services


@pytest.fixture
def split(tmp_path, migrated_template, live_secrets, request):
    """A fresh split installation; `request.param` may set extra environment and instances."""
    from tests.integration.conftest import make_live

    options = getattr(request, "param", {}) or {}
    manager, live = make_live(tmp_path, "rabbitmq", migrated_template, live_secrets)
    live.env.update(FAST)
    live.env.update(options.get("env", {}))
    live.manage("seed_demo")
    system = SplitSystem(live, instances=options.get("instances"))
    try:
        system.start()
        yield system
    finally:
        system.resume_all()
        manager.__exit__(None, None, None)


def test_a_checkout_rides_out_inventory_down_and_confirms_once_it_is_back(split):
    customer = Customer(split)
    product = customer.product()
    assert customer.add(product, 2).status_code == 201
    stock = available(split, product["sku"])

    split.groups["inventory"].stop()
    order_id = customer.checkout()
    time.sleep(10)
    assert customer.order(order_id)["status"] == "pending"  # waiting, not failed
    split.groups["inventory"].start()
    split.groups["inventory"].wait_ready()

    order = customer.final_order(order_id)
    assert order["status"] == "confirmed", order
    assert available(split, product["sku"]) == stock - 2
    waits = split.sql(
        "orders",
        "SELECT count(*) FROM cleave_sagasteplog WHERE step = 'reserve_inventory' "
        "AND status = 'unavailable'",
    )[0][0]
    assert waits >= 2


@pytest.mark.parametrize("split", [{"env": {"CLEAVE_CHECKOUT_DEADLINE": "4"}}], indirect=True)
def test_past_the_deadline_the_order_is_cancelled_truly_and_nothing_stays_held(split):
    customer = Customer(split)
    product = customer.product()
    assert customer.add(product, 1).status_code == 201
    stock = available(split, product["sku"])

    split.groups["payments"].stop()
    order_id = customer.checkout()
    time.sleep(6)  # past the deadline; voiding the payment waits for payments too
    assert customer.order(order_id)["status"] == "pending"
    assert available(split, product["sku"]) == stock - 1  # reserved, not yet released
    split.groups["payments"].start()
    split.groups["payments"].wait_ready()

    order = customer.final_order(order_id)
    assert order["status"] == "cancelled", order
    assert order["cancellation_reason"] == "service_unavailable"
    assert available(split, product["sku"]) == stock  # released
    captured = split.sql(
        "payments", "SELECT count(*) FROM payments_payment WHERE status = 'captured'"
    )[0][0]
    assert captured == 0


def test_a_hanging_catalog_costs_each_call_its_budget_then_the_breaker_answers_at_once(split):
    customer = Customer(split)
    product = customer.product()

    split.groups["catalog"].hang()
    timings, statuses = [], []
    for _ in range(5):
        started = time.monotonic()
        response = customer.add(product)
        timings.append(time.monotonic() - started)
        statuses.append(response.status_code)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert "Retry-After" in response.headers

    assert statuses == [503] * 5
    assert max(timings) < 5.5  # never more than the 5 s budget (and a little HTTP)
    assert timings[-1] < 0.2  # the breaker is open: no attempt, an answer in milliseconds

    split.groups["catalog"].resume()

    def added():
        return customer.add(product).status_code == 201

    wait_until(added, timeout=15, every=0.5, what="cart additions to succeed again")


@pytest.mark.parametrize("split", [{"instances": {"inventory": 2}}], indirect=True)
def test_checkouts_skip_a_dead_instance_of_inventory(split):
    split.groups["inventory"].stop(instance=1)
    orders = []
    for _ in range(4):
        customer = Customer(split)
        assert customer.add(customer.product(), 1).status_code == 201
        orders.append((customer, customer.checkout()))

    for customer, order_id in orders:
        assert customer.final_order(order_id, timeout=30)["status"] == "confirmed"
    ready = requests.get(f"{split.url}/ready", timeout=5).json()
    assert ready["circuits"]["orders->inventory"]["state"] == "closed"
