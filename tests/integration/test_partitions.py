"""
Faults between hosts: a split whose groups each run on a host of their own
(tests.support.hosts: network namespaces on one bridge), the network between
two of them cut while two buyers keep checking out, one with a card that is
approved and one with a card that is declined; then healed.

After each heal, whatever the fault: no order stays pending, no order is
charged twice, each order's end matches its payment, the stock is what was
sold, every confirmation reached analytics and notifications once, and
nothing was dead-lettered.

Needs root, iproute2 and nftables (CI installs them; see tests.support.hosts)
and RabbitMQ.
"""

from __future__ import annotations

import time
import uuid
from contextlib import contextmanager

import pytest

from cleave.messaging.broker.topology import EVENTS_EXCHANGE
from cleave.testing import services_required
from contracts.orders import ORDER_PLACED
from tests.support import hosts as network
from tests.support.live import broker_down, wait_until
from tests.support.split import FAST, GROUPS, Customer, SplitSystem, available
from tests.support.traffic import APPROVED, Traffic, check_invariants, settled

pytestmark = pytest.mark.services

# The split tests' shorter waits, and a call that hangs on a cut link gives up
# after 2 s rather than the default budget.
WAITS = {**FAST, "CLEAVE_BREAKER_CALL_TIMEOUT": "2", "CLEAVE_SERVICE_TIMEOUT": "4"}


def _require_hosts() -> None:
    why = network.available()
    if why is None:
        return
    if services_required():
        pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {why}")
    pytest.skip(why)


@contextmanager
def split_on_hosts(tmp_path, template, secrets, env: dict[str, str]):
    from tests.integration.conftest import make_live

    _require_hosts()
    network.Hosts.sweep()
    manager, live = make_live(tmp_path, "rabbitmq", template, secrets)
    hosts = None
    try:
        hosts = network.Hosts.create(GROUPS)
        live.env.update(WAITS)
        live.env.update(env)
        live.manage("seed_demo")
        system = SplitSystem(live, hosts=hosts)
        system.start()
        yield system
    finally:
        manager.__exit__(None, None, None)  # every process, by its pid
        if hosts is not None:
            hosts.close()


@pytest.fixture(scope="module")
def split(tmp_path_factory, migrated_template, live_secrets):
    with split_on_hosts(tmp_path_factory.mktemp("hosts"), migrated_template, live_secrets, {}) as s:
        yield s


def payment_retries(split: SplitSystem) -> int:
    """Attempts of the checkout's payment step that found payments out of reach or mute."""
    return split.sql(
        "orders",
        "SELECT count(*) FROM cleave_sagasteplog WHERE step = 'process_payment' "
        "AND status IN ('unavailable', 'timeout', 'error')",
    )[0][0]


def pending_events(split: SplitSystem, alias: str) -> int:
    query = "SELECT count(*) FROM cleave_outboxevent WHERE status = 'pending'"
    return split.sql(alias, query)[0][0]


def outbox_drained(split: SplitSystem) -> None:
    wait_until(
        lambda: pending_events(split, "orders") == 0,
        timeout=60,
        every=0.5,
        what="the orders outbox to drain",
    )


def test_orders_and_payments_cut_for_10s_every_order_ends_as_its_card_says(split):
    hosts = split.hosts
    retries = payment_retries(split)
    with Traffic(split) as traffic:
        time.sleep(2)
        hosts.cut("shop", "payments")
        during = len(traffic.orders)
        time.sleep(10)
        placed_in_cut = len(traffic.orders) - during
        hosts.heal()
        time.sleep(2)

    assert placed_in_cut >= 4  # the shop took orders while payments was out of reach
    assert payment_retries(split) > retries  # and their payments waited for it
    ends = settled(traffic)
    outcome = check_invariants(split, traffic, ends)
    for order_id, card, _ in traffic.orders:
        expected = "confirmed" if card == APPROVED else "cancelled"
        assert ends[order_id]["status"] == expected, ends[order_id]
    assert outcome["confirmed"] >= 2 and outcome["cancelled"] >= 2


def test_lost_answers_from_payments_never_charge_twice(split):
    hosts = split.hosts
    port = split.groups["payments"].ports[0]
    retries = payment_retries(split)
    with Traffic(split) as traffic:
        time.sleep(1)
        # payments reads every charge and answers; not one answer reaches the shop
        hosts.cut("shop", "payments", answers_only=True, port=port)
        time.sleep(8)
        hosts.heal()
        time.sleep(2)

    ends = settled(traffic)
    check_invariants(split, traffic, ends)
    assert payment_retries(split) > retries  # the answers were lost, and the steps asked again


@contextmanager
def tapped(split: SplitSystem, pattern: str):
    """A queue of the test's own on the events exchange: what the broker routed, in order."""
    from kombu import Connection, Exchange, Queue

    live = split.live
    exchange = Exchange(f"{live.prefix}{EVENTS_EXCHANGE}", type="topic", passive=True)
    with Connection(live.broker_url) as conn:
        queue = Queue(
            f"{live.prefix}tap.{uuid.uuid4().hex[:8]}",
            exchange,
            routing_key=pattern,
            durable=False,
            channel=conn.channel(),
        )
        queue.declare()

        def envelopes() -> list[dict]:
            seen = []
            while (message := queue.get(no_ack=True)) is not None:
                argument = message.decode()[0][0]  # Celery's body: [args, kwargs, embed]
                seen.extend(argument if isinstance(argument, list) else [argument])
            return seen

        try:
            yield envelopes
        finally:
            queue.delete()


def assert_in_order_per_order(envelopes: list[dict]) -> int:
    """Each order's events reached the broker in the order they were committed; how many orders."""
    firsts: dict[str, list[dict]] = {}
    seen_ids = set()
    for envelope in envelopes:
        if envelope["id"] in seen_ids:
            continue  # a republished duplicate: its first copy is the one that counts
        seen_ids.add(envelope["id"])
        firsts.setdefault(envelope["data"]["order_id"], []).append(envelope)
    for order_id, events in firsts.items():
        kinds = [event["type"] for event in events]
        assert kinds[0] == ORDER_PLACED.name, (order_id, kinds)
        stamps = [event["timestamp"] for event in events]
        assert stamps == sorted(stamps), (order_id, kinds, stamps)
    return len(firsts)


def test_a_group_cut_from_the_broker_backs_up_its_outbox_then_drains_it_in_order(split):
    hosts = split.hosts
    with tapped(split, "order.#") as tap:
        with Traffic(split) as traffic:
            time.sleep(1)
            hosts.cut_server("shop", 5672)  # the orders group: its events cannot leave
            time.sleep(8)
            backlog = pending_events(split, "orders")
            hosts.heal()
            time.sleep(2)
        check_invariants(split, traffic, settled(traffic))
        outbox_drained(split)
        time.sleep(1)
        orders = assert_in_order_per_order(tap())

    assert backlog >= 2  # orders were placed and confirmed; their events waited
    assert orders >= len(traffic.orders)  # every order's events were seen, in order


def test_rabbitmq_stopped_for_20s_loses_no_event_and_handles_none_twice(split):
    with Traffic(split) as traffic:
        time.sleep(1)
        with broker_down("rabbitmq"):
            time.sleep(20)
            backlog = pending_events(split, "orders")
        time.sleep(3)  # the relays and workers reconnect by themselves

    assert backlog >= 1  # events waited in the outbox while the broker was away
    check_invariants(split, traffic, settled(traffic))
    outbox_drained(split)


def test_a_cut_past_the_deadline_cancels_the_orders_and_releases_their_stock(
    tmp_path, migrated_template, live_secrets
):
    env = {"CLEAVE_CHECKOUT_DEADLINE": "5"}
    with split_on_hosts(tmp_path, migrated_template, live_secrets, env) as split:
        customer = Customer(split)
        product = customer.product()
        before = available(split, product["sku"])
        split.hosts.cut("shop", "payments")
        order_ids = []
        for _ in range(3):
            assert customer.add(product, 1).status_code == 201
            order_ids.append(customer.checkout())
        time.sleep(8)  # past the deadline; voiding the payments waits for the link too
        assert all(customer.order(order_id)["status"] == "pending" for order_id in order_ids)
        split.hosts.heal()

        for order_id in order_ids:
            order = customer.final_order(order_id, timeout=90)
            assert order["status"] == "cancelled", order
            assert order["cancellation_reason"] == "service_unavailable", order
        assert available(split, product["sku"]) == before  # released
        captured = split.sql(
            "payments", "SELECT count(*) FROM payments_payment WHERE status = 'captured'"
        )[0][0]
        assert captured == 0
        assert split.live.dead_letters("orders") == []
