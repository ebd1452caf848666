"""
The outbox rows' way from pending to published, shared by the transports:
which rows a relay may take (locked, skipping those another relay holds), and
marking them published with the attempt counted.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.db import connections
from django.utils import timezone

from cleave.core import db
from cleave.messaging.models import OutboxEvent


def relay_batch() -> int:
    return int(settings.CLEAVE_EVENT_RELAY_BATCH)


def pending_rows(alias: str, *, ids: Iterable[UUID] | None = None, older_than=None, limit=None):
    """
    Pending outbox rows of `alias`, oldest first, locked for this transaction.

    Call inside `transaction.atomic(using=alias)`. Where the database can
    (PostgreSQL, MariaDB/MySQL 8) rows another relay holds are skipped rather
    than waited for, so several relays never publish the same row at once.
    SQLite takes its write lock when the transaction begins
    (`transaction_mode=IMMEDIATE`), which serializes relays instead.
    """
    rows = OutboxEvent.objects.using(alias).filter(status=OutboxEvent.Status.PENDING)
    if ids is not None:
        rows = rows.filter(pk__in=list(ids))
    if older_than is not None:
        rows = rows.filter(occurred_at__lte=timezone.now() - older_than)
    features = connections[alias].features
    if features.has_select_for_update:
        rows = rows.select_for_update(skip_locked=features.has_select_for_update_skip_locked)
    rows = rows.order_by("occurred_at", "id")
    return list(rows[: limit or relay_batch()])


def mark_published(alias: str, *, where: dict, last_error: str = "", **more) -> None:
    """Mark outbox rows published, counting the attempt that took them there."""
    db.update(
        OutboxEvent,
        alias,
        {
            "status": OutboxEvent.Status.PUBLISHED,
            "published_at": timezone.now(),
            "attempts": db.Add(1),
            "last_error": last_error[:20000],
            **more,
        },
        where=where,
    )


def record_publish(alias: str, ids: list, result) -> tuple[list, list]:
    """
    Mark the rows the broker confirmed published (those still pending) and
    count an attempt, with the error, on the others; return (done, failed).
    """
    confirmed = {str(event_id) for event_id in result.confirmed}
    done = [event_id for event_id in ids if str(event_id) in confirmed]
    failed = [event_id for event_id in ids if str(event_id) not in confirmed]
    mark_published(
        alias,
        where={"id": done, "status": OutboxEvent.Status.PENDING},
        broker_epoch=result.epoch,
    )
    db.update(
        OutboxEvent,
        alias,
        {"attempts": db.Add(1), "last_error": result.error[:20000]},
        where={"id": failed},
    )
    return done, failed
