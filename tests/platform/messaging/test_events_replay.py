"""
The event log: replay in commit order (rebuilding the analytics read model
exactly), retention, and read models that stay right whatever order and
however often events arrive.
"""

from __future__ import annotations

import random
import time
import uuid
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction
from django.utils import timezone

from cleave.messaging import delivery, inbox, replay, subscriptions
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import Delivery, InboxRecord, OutboxEvent
from cleave.messaging.publish import publish
from cleave.testing import flows
from contexts.analytics import queries
from contexts.analytics.models import Counter, ProductSales
from contexts.notifications.models import Notification

pytestmark = flows

SKUS = ["TEE-1", "MUG-1", "CAP-1", "BAG-1"]
PRODUCTS = {sku: str(uuid.uuid4()) for sku in SKUS}


def _line(sku: str, quantity: int, price: str = "10.00") -> dict:
    return {
        "product_id": PRODUCTS[sku],
        "sku": sku,
        "name": sku.title(),
        "unit_price": price,
        "quantity": quantity,
        "line_total": str(Decimal(price) * quantity),
    }


def user_created() -> tuple[str, dict]:
    customer = str(uuid.uuid4())
    return "user.created", {
        "customer_id": customer,
        "email": f"{customer[:8]}@example.com",
        "name": "Ada",
        "created_at": "2025-01-01T12:00:00+00:00",
    }


def order_confirmed(customer: str, lines: list[dict]) -> tuple[str, dict]:
    return "order.confirmed", {
        "order_id": str(uuid.uuid4()),
        "customer_id": customer,
        "lines": lines,
        "total": str(sum(Decimal(line["line_total"]) for line in lines)),
        "currency": "EUR",
        "payment_id": str(uuid.uuid4()),
    }


def order_cancelled(customer: str, total: str = "30.00") -> tuple[str, dict]:
    return "order.cancelled", {
        "order_id": str(uuid.uuid4()),
        "customer_id": customer,
        "reason": "payment_declined",
        "total": total,
        "currency": "EUR",
    }


def shop_history(seed: int = 7) -> list[tuple[str, dict]]:
    """A plausible mix of registrations, confirmed and cancelled orders."""
    rng = random.Random(seed)
    events, customers = [], []
    for _ in range(30):
        roll = rng.random()
        if roll < 0.3 or not customers:
            name, data = user_created()
            customers.append(data["customer_id"])
        elif roll < 0.8:
            lines = [
                _line(sku, rng.randint(1, 4), rng.choice(["9.90", "19.90", "4.50"]))
                for sku in rng.sample(SKUS, rng.randint(1, 3))
            ]
            name, data = order_confirmed(rng.choice(customers), lines)
        else:
            name, data = order_cancelled(rng.choice(customers))
        events.append((name, data))
    return events


def publish_all(events: list[tuple[str, dict]]) -> None:
    owner = {"user.created": "users", "order.confirmed": "orders", "order.cancelled": "orders"}
    for name, data in events:
        with transaction.atomic(using=owner[name]):
            publish(name, data)


def read_model() -> dict:
    """The analytics read model, without its bookkeeping timestamps."""
    return {
        "counters": sorted(Counter.objects.using("analytics").values_list("name", "value")),
        "products": sorted(
            ProductSales.objects.using("analytics").values_list(
                "product_id", "sku", "quantity", "revenue"
            )
        ),
    }


def test_replay_with_reset_rebuilds_the_analytics_read_model_exactly():
    publish_all(shop_history())
    incremental = read_model()
    assert incremental["counters"] and incremental["products"]

    out = StringIO()
    call_command("events", "replay", "--subscriber", "analytics", "--reset", stdout=out)

    assert read_model() == incremental
    assert "replayed 30 event(s) to analytics after a reset: applied 30" in out.getvalue()
    applied = InboxRecord.objects.using("analytics").count()
    assert applied == 30, "each event re-recorded once"


def test_replay_without_reset_only_fills_gaps():
    publish_all(shop_history(seed=3))
    incremental = read_model()
    # an event analytics never saw (as if its delivery had been lost)
    name, data = user_created()
    with transaction.atomic(using="users"):
        row = OutboxEvent.objects.using("users").create(
            type=name, version=1, source="users", data=data, status="published"
        )

    out = StringIO()
    call_command("events", "replay", "--subscriber", "analytics", stdout=out)

    expected = dict(incremental["counters"])
    expected["users_registered"] += 1
    assert dict(read_model()["counters"]) == expected
    assert "applied 1" in out.getvalue() and "duplicate 30" in out.getvalue()
    assert InboxRecord.objects.using("analytics").filter(event_id=row.id).count() == 1


def test_replay_delivers_in_commit_order_filtered_by_type_and_date():
    seen: list[tuple[str, str]] = []

    def recorder(envelope: Envelope) -> None:
        seen.append((envelope.type, envelope.data.get("order_id") or envelope.data["customer_id"]))

    recorder.__module__ = "contexts.analytics.handlers"
    recorder.__qualname__ = f"recorder_{uuid.uuid4().hex[:6]}"
    subscriptions.subscriber("user.*", "order.*")(recorder)
    try:
        history = shop_history(seed=11)
        publish_all(history)
        expected = [(n, d.get("order_id") or d["customer_id"]) for n, d in history]
        assert seen == expected
        seen.clear()
        InboxRecord.objects.using("analytics").filter(handler__contains="recorder_").delete()

        replay.replay("analytics")
        assert seen == expected, "the outboxes of users and orders merged in commit order"

        seen.clear()
        InboxRecord.objects.using("analytics").filter(handler__contains="recorder_").delete()
        replay.replay("analytics", type_pattern="order.c*")
        assert seen == [e for e in expected if e[0].startswith("order.c")]

        seen.clear()
        InboxRecord.objects.using("analytics").filter(handler__contains="recorder_").delete()
        replay.replay("analytics", since=timezone.now() + timedelta(minutes=1))
        assert seen == []
    finally:
        subscriptions._subscriptions[:] = [
            s for s in subscriptions._subscriptions if s.func is not recorder
        ]


def test_replay_refuses_what_it_cannot_do():
    with pytest.raises(CommandError, match="No local context"):
        call_command("events", "replay", "--subscriber", "warehouse", stdout=StringIO())
    with pytest.raises(CommandError, match="subscribes to no event"):
        call_command("events", "replay", "--subscriber", "catalog", stdout=StringIO())
    with pytest.raises(CommandError, match="no reset hook"):
        call_command(
            "events", "replay", "--subscriber", "notifications", "--reset", stdout=StringIO()
        )


def test_prune_deletes_settled_rows_older_than_the_retention_and_keeps_what_is_pending():
    publish_all(shop_history(seed=5)[:6])
    # the outlet delivers after each commit on a thread of its own: let it mark
    # every row published first, or it may mark the row made pending below
    deadline = time.monotonic() + 10
    while OutboxEvent.objects.using("orders").exclude(status="published").exists():
        assert time.monotonic() < deadline, "the outlet did not deliver the events"
        time.sleep(0.05)
    old = timezone.now() - timedelta(days=40)
    OutboxEvent.objects.using("orders").update(occurred_at=old, published_at=old)
    InboxRecord.objects.using("analytics").update(processed_at=old)
    stuck = OutboxEvent.objects.using("orders").first()
    OutboxEvent.objects.using("orders").filter(pk=stuck.pk).update(status="pending")
    published_old = OutboxEvent.objects.using("orders").filter(status="published").count()
    inbox_old = InboxRecord.objects.using("analytics").count()

    dry = StringIO()
    call_command("events", "prune", "--older-than", "30", "--dry-run", stdout=dry)
    assert OutboxEvent.objects.using("orders").count() == published_old + 1
    out = StringIO()
    call_command("events", "prune", "--older-than", "30", stdout=out)

    assert list(OutboxEvent.objects.using("orders").values_list("id", flat=True)) == [stuck.pk]
    assert not InboxRecord.objects.using("analytics").exists()
    assert f"would delete outbox {published_old}," in dry.getvalue()
    assert f"inbox {inbox_old}," in out.getvalue()
    call_command("events", "prune", "--older-than", "0", stdout=StringIO())
    assert OutboxEvent.objects.using("orders").filter(pk=stuck.pk).exists(), "pending is kept"


# --- order of arrival ------------------------------------------------------------------


def _envelopes(events: list[tuple[str, dict]]) -> list[Envelope]:
    owner = {"user.created": "users", "order.confirmed": "orders", "order.cancelled": "orders"}
    return [
        Envelope(
            id=str(uuid.uuid4()),
            type=name,
            version=1,
            source=owner[name],
            timestamp=timezone.now().isoformat(),
            data=data,
        )
        for name, data in events
    ]


def _deliver(envelopes: list[Envelope], context: str) -> None:
    for envelope in envelopes:
        for sub in subscriptions.subscriptions_for(envelope.type, subscriber_context=context):
            inbox.apply(sub, envelope)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_analytics_read_model_is_the_same_in_any_order_and_with_redeliveries(seed):
    envelopes = _envelopes(shop_history(seed=seed))
    _deliver(envelopes, "analytics")
    in_order = read_model()
    summary = queries.summary()
    Counter.objects.using("analytics").all().delete()
    ProductSales.objects.using("analytics").all().delete()
    InboxRecord.objects.using("analytics").all().delete()

    rng = random.Random(seed)
    shuffled = envelopes + rng.sample(envelopes, k=len(envelopes) // 2)  # redeliveries
    rng.shuffle(shuffled)
    _deliver(shuffled, "analytics")

    assert read_model() == in_order
    assert queries.summary() == summary


def test_notifications_are_the_same_in_any_order_and_with_redeliveries():
    customer_event = user_created()
    customer = customer_event[1]["customer_id"]
    history = [
        customer_event,
        order_confirmed(customer, [_line("TEE-1", 1)]),
        order_cancelled(customer),
        order_confirmed(customer, [_line("MUG-1", 2)]),
    ]
    envelopes = _envelopes(history)

    def notifications():
        return sorted(
            Notification.objects.using("notifications").values_list("event_id", "kind", "subject")
        )

    _deliver(envelopes, "notifications")
    in_order = notifications()
    Notification.objects.using("notifications").all().delete()
    InboxRecord.objects.using("notifications").all().delete()

    # the order arrives before the customer's registration, and twice
    _deliver([*reversed(envelopes), *envelopes], "notifications")

    assert [(e, k) for e, k, _ in notifications()] == [(e, k) for e, k, _ in in_order]
    assert len(in_order) == 4


def test_a_retried_delivery_after_later_events_leaves_the_same_read_model(settings):
    """A failed handler retried after later events were applied: same totals."""
    settings.CLEAVE_EVENT_RETRY_BASE = 0
    envelopes = _envelopes(shop_history(seed=9)[:10])
    _deliver(envelopes, "analytics")
    expected = read_model()
    Counter.objects.using("analytics").all().delete()
    ProductSales.objects.using("analytics").all().delete()
    InboxRecord.objects.using("analytics").all().delete()

    calls = {"n": 0}
    first = envelopes[0]
    subs = subscriptions.subscriptions_for(first.type, subscriber_context="analytics")
    original = subs[0].func

    def failing_once(envelope):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database hiccup")
        original(envelope)

    broken = subscriptions.Subscription(subs[0].pattern, failing_once)
    failing_once.__module__, failing_once.__qualname__ = original.__module__, original.__qualname__
    assert delivery.consume(broken, first).outcome == "retry"
    _deliver(envelopes[1:], "analytics")
    assert delivery.consume(broken, first).outcome == "applied"

    assert read_model() == expected
    assert Delivery.objects.using("analytics").get().status == "applied"
