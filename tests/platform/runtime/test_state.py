"""
What needs attention (cleave.runtime.state): which sagas are failed, overdue,
stalled or waiting (each under one kind only), which dead letters and outbox
backlogs count, and a database that cannot be read, reported, not raised.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from cleave.messaging.models import DeadLetter, OutboxEvent
from cleave.runtime import state
from cleave.sagas.models import SagaInstance
from cleave.testing import unit
from tests.support.platform import dead_letter, saga

pytestmark = unit

State = SagaInstance.State


def kinds_of(report: state.Report) -> dict[str, str]:
    return {item.ref: item.kind for item in report.items}


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


def later(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def test_nothing_to_report_is_healthy():
    report = state.attention()

    assert report.healthy
    assert report.items == []
    assert [context.label for context in report.contexts][:2] == ["users", "catalog"]
    assert report.to_dict()["healthy"] is True


def test_each_troubled_saga_counts_once_under_its_most_urgent_kind(settings):
    settings.CLEAVE_SAGA_LEASE_SECONDS = 30
    failed = saga(state=State.FAILED, failure_reason="payment_error")
    late_compensation = saga(
        state=State.COMPENSATING, deadline=ago(60), wake_at=later(10), last_error="down"
    )
    late = saga(state=State.RUNNING, deadline=ago(5))
    stalled = saga(state=State.RUNNING, lease_expires_at=ago(120), deadline=later(600))
    never_driven = saga(state=State.RUNNING, quiet_for=120)
    waiting = saga(state=State.RUNNING, wake_at=later(20), last_error="ServiceUnavailable")
    driven = saga(state=State.RUNNING, lease_owner="w1", lease_expires_at=later(20))
    just_started = saga(state=State.RUNNING)
    done = saga(state=State.COMPLETED, deadline=ago(600))
    undone = saga(state=State.COMPENSATED)

    report = state.attention()

    found = kinds_of(report)
    assert found == {
        str(failed.id): state.SAGA_FAILED,
        str(late_compensation.id): state.COMPENSATION_OVERDUE,
        str(late.id): state.SAGA_OVERDUE,
        str(stalled.id): state.SAGA_STALLED,
        str(never_driven.id): state.SAGA_STALLED,
        str(waiting.id): state.SAGA_WAITING,
    }
    for healthy in (driven, just_started, done, undone):
        assert str(healthy.id) not in found
    orders = next(context for context in report.contexts if context.label == "orders")
    assert orders.sagas == {
        state.SAGA_FAILED: 1,
        state.COMPENSATION_OVERDUE: 1,
        state.SAGA_OVERDUE: 1,
        state.SAGA_STALLED: 2,
        state.SAGA_WAITING: 1,
    }


def test_a_saga_waiting_past_its_wake_time_for_a_lease_is_stalled(settings):
    settings.CLEAVE_SAGA_LEASE_SECONDS = 30
    forgotten = saga(state=State.RUNNING, wake_at=ago(90), quiet_for=120)

    assert kinds_of(state.attention()) == {str(forgotten.id): state.SAGA_STALLED}


def test_items_come_most_urgent_first_and_link_where_to_act():
    waiting = saga("users", state=State.RUNNING, wake_at=later(20))
    failed = saga("orders", state=State.FAILED)

    items = state.attention().items

    assert [item.ref for item in items] == [str(failed.id), str(waiting.id)]
    assert items[0].link == f"/admin/cleave/sagainstance/{failed.id}/change/?context=orders"


def test_the_sagas_listed_per_kind_are_limited_but_counted():
    for _ in range(3):
        saga(state=State.FAILED)

    report = state.attention(limit=2)

    assert len(report.items) == 2
    assert report.count(state.SAGA_FAILED) == 3


def test_dead_letters_not_redriven_need_attention():
    dead = dead_letter("analytics")
    dead_letter("analytics", status=DeadLetter.Status.REDRIVEN)

    report = state.attention()

    (item,) = report.items
    assert (item.kind, item.ref, item.context) == (state.DEAD_LETTER, str(dead.id), "analytics")
    assert item.detail == "handler failed every attempt: KeyError: 'total'"
    assert item.link == f"/admin/cleave/deadletter/{dead.id}/change/?context=analytics"
    assert report.count(state.DEAD_LETTER) == 1


def test_an_outbox_lags_when_its_oldest_pending_event_outlived_the_relay(settings):
    settings.CLEAVE_EVENT_RELAY_GRACE = 2
    settings.CLEAVE_EVENT_RELAY_INTERVAL = 5
    for alias, waited in (("orders", 60), ("users", 3)):
        OutboxEvent.objects.using(alias).create(
            type="order.placed", source=alias, data={}, occurred_at=ago(waited)
        )
    OutboxEvent.objects.using("payments").create(
        type="payment.captured",
        source="payments",
        data={},
        occurred_at=ago(600),
        status=OutboxEvent.Status.PUBLISHED,
    )

    report = state.attention()

    (item,) = report.items
    assert (item.kind, item.context) == (state.OUTBOX_LAGGING, "orders")
    assert item.link == "/admin/cleave/outboxevent/?context=orders&status__exact=pending"
    users = next(context for context in report.contexts if context.label == "users")
    assert users.outbox.pending == 1  # young: in flight, not trouble


def test_a_database_that_cannot_be_read_is_reported_and_the_others_still_read(monkeypatch):
    failed = saga("orders", state=State.FAILED)

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connections["analytics"], "cursor", down)
    report = state.attention()

    assert kinds_of(report) == {str(failed.id): state.SAGA_FAILED, "analytics": state.UNAVAILABLE}
    assert report.to_dict()["contexts"]["analytics"] == {
        "available": False,
        "error": "OperationalError: connection refused",
    }


def test_a_reader_sees_only_the_kinds_they_may():
    saga(state=State.FAILED)
    dead_letter("analytics")

    shown = state.attention().only({state.DEAD_LETTER, state.UNAVAILABLE}).to_dict()

    assert [item["kind"] for item in shown["items"]] == [state.DEAD_LETTER]
    assert set(shown["counts"]) == {state.DEAD_LETTER, state.UNAVAILABLE}
    assert shown["contexts"]["orders"] == {"available": True, "dead_letters": 0}


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (None, "-"),
        (4.6, "5 s"),
        (65, "1 min 5 s"),
        (3 * 3600 + 1200, "3 h 20 min"),
        (2 * 86400 + 4 * 3600, "2 d 4 h"),
    ],
)
def test_ages_are_written_for_people(seconds, shown):
    assert state.age(seconds) == shown
