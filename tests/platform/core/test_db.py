"""
The prepared statements of `cleave.core.db` against every alias's backend.

They write the platform's hot rows (outbox, inbox, saga progress) without the
ORM's query compilation; what they store must read back through the ORM
exactly as if the ORM had written it. CI runs this on SQLite, and again with
the orders alias on MariaDB and the others on PostgreSQL.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from cleave.core import db
from cleave.messaging.models import InboxRecord, OutboxEvent
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import unit

pytestmark = [unit, pytest.mark.parametrize("alias", ["users", "orders"])]


def outbox_values(**overrides):
    values = {
        "id": uuid.uuid4(),
        "type": "platform.probed",
        "version": 2,
        "source": "users",
        "data": {"n": 1, "text": "ünïcode", "nested": {"list": [1, 2.5, None, True]}},
        "correlation_id": "flow-1",
        "causation_id": "",
        "traceparent": "",
        "occurred_at": timezone.now(),
        "status": OutboxEvent.Status.PENDING,
        "published_at": None,
        "attempts": 0,
        "last_error": "",
        "broker_epoch": "",
    }
    values.update(overrides)
    return values


def started_log_values(saga):
    return {
        "saga_id": saga.id,
        "step_index": 0,
        "step": "reserve",
        "kind": SagaStepLog.Kind.ACTION,
        "attempt": 1,
        "status": SagaStepLog.Status.STARTED,
        "result": None,
    }


def test_an_inserted_row_reads_back_through_the_orm_as_written(alias):
    values = outbox_values()

    db.insert(OutboxEvent, alias, values)

    row = OutboxEvent.objects.using(alias).get(pk=values["id"])
    for name, value in values.items():
        assert getattr(row, name) == value, name


def test_columns_not_given_take_their_defaults(alias):
    event_id = uuid.uuid4()

    db.insert(
        InboxRecord, alias, {"event_id": event_id, "handler": "h", "event_type": "t", "source": "s"}
    )

    row = InboxRecord.objects.using(alias).get(event_id=event_id)
    assert abs(row.processed_at - timezone.now()) < timedelta(minutes=1)


def test_an_unknown_column_is_refused(alias):
    with pytest.raises(ValueError, match="no columns"):
        db.insert(InboxRecord, alias, {"event_id": uuid.uuid4(), "nonsense": 1})


def test_insert_or_ignore_reports_whether_the_row_was_new(alias):
    values = {"event_id": uuid.uuid4(), "handler": "h", "event_type": "t", "source": "s"}

    with transaction.atomic(using=alias):
        first = db.insert(InboxRecord, alias, values, ignore_conflicts=True)
        again = db.insert(InboxRecord, alias, values, ignore_conflicts=True)

    assert (first, again) == (True, False)
    assert InboxRecord.objects.using(alias).filter(event_id=values["event_id"]).count() == 1


def test_an_auto_increment_key_is_returned(alias):
    saga = SagaInstance.objects.using(alias).create(saga_type="t", context="users", data={})
    values = started_log_values(saga)

    first = db.insert(SagaStepLog, alias, values, returning_pk=True)
    second = db.insert(SagaStepLog, alias, values, returning_pk=True)

    assert second > first
    assert list(
        SagaStepLog.objects.using(alias).filter(saga=saga).values_list("id", flat=True)
    ) == [
        first,
        second,
    ]
    assert SagaStepLog.objects.using(alias).get(pk=first).result is None


def test_several_rows_go_in_one_statement_with_the_same_columns(alias):
    rows = [outbox_values(), outbox_values()]

    assert db.insert_many(OutboxEvent, alias, rows) == 2
    assert OutboxEvent.objects.using(alias).filter(pk__in=[r["id"] for r in rows]).count() == 2
    with pytest.raises(ValueError, match="same columns"):
        db.insert_many(OutboxEvent, alias, [outbox_values(), {"id": uuid.uuid4()}])


def test_update_sets_adds_and_matches_by_equality_and_membership(alias):
    rows = [outbox_values(attempts=3), outbox_values(attempts=5), outbox_values()]
    db.insert_many(OutboxEvent, alias, rows)
    now = timezone.now()

    changed = db.update(
        OutboxEvent,
        alias,
        {"status": OutboxEvent.Status.PUBLISHED, "published_at": now, "attempts": db.Add(1)},
        where={"id": [rows[0]["id"], rows[1]["id"]], "status": OutboxEvent.Status.PENDING},
    )

    assert changed == 2
    stored = {
        r.id: r for r in OutboxEvent.objects.using(alias).filter(pk__in=[r["id"] for r in rows])
    }
    assert [stored[r["id"]].attempts for r in rows] == [4, 6, 0]
    assert stored[rows[0]["id"]].published_at == now
    assert stored[rows[2]["id"]].status == OutboxEvent.Status.PENDING


def test_an_update_with_an_empty_membership_changes_nothing(alias):
    db.insert(OutboxEvent, alias, outbox_values())

    assert db.update(OutboxEvent, alias, {"attempts": 9}, where={"id": []}) == 0
    with pytest.raises(ValueError, match="condition"):
        db.update(OutboxEvent, alias, {"attempts": 9}, where={})


def test_json_values_survive_as_written(alias):
    data = {"order": "o-1", "lines": [{"sku": "A", "quantity": 2}], "amount": "9.90", "ok": None}
    saga = SagaInstance.objects.using(alias).create(saga_type="t", context="users", data={})

    db.update(SagaInstance, alias, {"data": data}, where={"id": saga.id})

    saga.refresh_from_db(using=alias)
    assert saga.data == data


def test_values_reads_one_column_of_the_matching_rows(alias):
    rows = [outbox_values(), outbox_values(), outbox_values(status=OutboxEvent.Status.PUBLISHED)]
    db.insert_many(OutboxEvent, alias, rows)

    pending = db.values(
        OutboxEvent,
        alias,
        "id",
        where={"id": [r["id"] for r in rows], "status": OutboxEvent.Status.PENDING},
    )

    assert sorted(pending) == sorted([rows[0]["id"], rows[1]["id"]])
    assert db.values(OutboxEvent, alias, "id", where={"id": []}) == []


def test_statements_prepared_before_a_transaction_run_inside_it(alias):
    """Nothing is written until a statement runs; run, it commits or rolls back with the caller."""
    kept, dropped = outbox_values(), outbox_values()
    db.insert(OutboxEvent, alias, dropped)
    saga = SagaInstance.objects.using(alias).create(saga_type="t", context="users", data={})
    log_values = started_log_values(saga)

    insert = db.prepare_insert(OutboxEvent, alias, kept)
    ignored = db.prepare_insert(OutboxEvent, alias, dropped, ignore_conflicts=True)
    keyed = db.prepare_insert(SagaStepLog, alias, log_values, returning_pk=True)
    update = db.prepare_update(
        OutboxEvent, alias, {"attempts": db.Add(2)}, where={"id": kept["id"]}
    )
    nothing = db.prepare_update(OutboxEvent, alias, {"attempts": 9}, where={"id": []})
    assert not OutboxEvent.objects.using(alias).filter(pk=kept["id"]).exists()

    with transaction.atomic(using=alias):
        assert insert.run() is None
        assert ignored.run() is False
        pk = keyed.run()
        assert update.run() == 1
        assert nothing.run() == 0

    assert OutboxEvent.objects.using(alias).get(pk=kept["id"]).attempts == 2
    assert SagaStepLog.objects.using(alias).get(pk=pk).step == "reserve"

    rolled_back = outbox_values()
    statement = db.prepare_insert(OutboxEvent, alias, rolled_back)
    with pytest.raises(RuntimeError), transaction.atomic(using=alias):
        statement.run()
        raise RuntimeError("the caller's transaction fails")
    assert not OutboxEvent.objects.using(alias).filter(pk=rolled_back["id"]).exists()
