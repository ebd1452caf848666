"""
Transports carry committed outbox rows to subscribers. One setting switches
them (`CLEAVE_EVENT_TRANSPORT`); handlers, envelope and inbox do not change.

- `inprocess` (default): right after the publisher's commit, this process runs
  every local subscriber, each in its own transaction on its own alias. A
  failing handler gets a `Delivery` row and is retried by the relay sweep with
  backoff; after the last attempt it is dead-lettered.
- `celery`: right after the commit, a relay thread of this process publishes
  the rows to the broker's topic exchange (marking them published only once
  the broker confirmed) and Celery workers consume one durable queue per
  context (`cleave.tasks.handle_event`). Failures are retried by the worker
  with backoff, then dead-lettered.

Both have a sweep (`python manage.py events relay`, the periodic job
`cleave.events.relay_sweep`, Celery beat) that recovers what a crash left
behind: rows still pending after a grace period, and retries that are due.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from cleave import db

from . import bus, consumer

logger = logging.getLogger("cleave.events")


def relay_grace() -> timedelta:
    """How old a pending row must be before a sweep takes it (the fast path owns younger ones)."""
    return timedelta(seconds=float(settings.CLEAVE_EVENT_RELAY_GRACE))


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
    from .models import OutboxEvent

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


class PublishError(RuntimeError):
    """The broker did not accept (or confirm) every row; the rest stay pending."""


class Transport:
    """
    Contract: `committed()` is told of rows the moment their transaction
    commits; `deliver_pending()` and `retry_due()` are the sweep.
    """

    name = ""

    def carries(self, type_name: str) -> bool:
        """Whether an event of this type has somewhere to go (else it is written published)."""
        return True

    def committed(
        self, alias: str, event_ids: Iterable[UUID], envelopes: list | None = None
    ) -> None:
        """`envelopes`, when given, are the committed rows' envelopes (no need to read them)."""
        raise NotImplementedError(".committed() must be overridden")

    def deliver_pending(self, alias: str, *, limit: int = 500, older_than=None) -> int:
        """Deliver rows still pending in `alias` (crash recovery)."""
        raise NotImplementedError(".deliver_pending() must be overridden")

    def retry_due(self, alias: str) -> int:
        """Attempt again the failed deliveries of `alias` whose backoff has passed."""
        raise NotImplementedError(".retry_due() must be overridden")

    def redrive(self, deliveries: list) -> int:
        """Attempt these deliveries now (redriven dead letters, "attempt now"): they are due."""
        raise NotImplementedError(".redrive() must be overridden")


class InProcessTransport(Transport):
    name = "inprocess"

    def carries(self, type_name: str) -> bool:
        return bool(bus.subscriptions_for(type_name))

    def committed(
        self, alias: str, event_ids: Iterable[UUID], envelopes: list | None = None
    ) -> None:
        if envelopes is not None:
            for envelope in envelopes:
                try:
                    deliver_committed(alias, envelope)
                except Exception:  # never let delivery break the publisher's request
                    logger.exception("In-process delivery of %s failed", envelope.id)
            return
        for event_id in event_ids:
            try:
                deliver_locally(alias, event_id)
            except Exception:  # never let delivery break the publisher's request
                logger.exception("In-process delivery of %s failed", event_id)

    def deliver_pending(self, alias: str, *, limit: int = 500, older_than=None) -> int:
        from .models import OutboxEvent

        rows = OutboxEvent.objects.using(alias).filter(status=OutboxEvent.Status.PENDING)
        if older_than is not None:
            rows = rows.filter(occurred_at__lte=timezone.now() - older_than)
        ids = list(rows.order_by("occurred_at", "id").values_list("id", flat=True)[:limit])
        self.committed(alias, ids)
        return len(ids)

    def retry_due(self, alias: str) -> int:
        due = consumer.due_deliveries(alias)
        for delivery in due:
            consumer.retry_delivery(delivery)
        return len(due)

    def redrive(self, deliveries: list) -> int:
        for delivery in deliveries:
            consumer.retry_delivery(delivery, force=True)
        return len(deliveries)


def deliver_locally(alias: str, event_id: UUID) -> bool:
    """
    Hand one outbox row to every local subscriber; mark it published.

    Each handler either applies the event, or gets a `Delivery` row that
    schedules its retry, or dead-letters it: so once this returns, the row's
    fate is recorded and it is marked published. A crash before that leaves it
    pending and the sweep hands it over again (the inbox skips handlers that
    already applied it). Returns True when the row is (now) published.
    """
    from .models import OutboxEvent

    row = OutboxEvent.objects.using(alias).filter(pk=event_id).first()
    if row is None or row.status == OutboxEvent.Status.PUBLISHED:
        return row is not None
    envelope = row.envelope()
    results = [consumer.consume(sub, envelope) for sub in bus.subscriptions_for(envelope.type)]
    _mark_delivered(alias, envelope.id, results)
    return True


def deliver_committed(alias: str, envelope) -> None:
    """
    The fast path of `deliver_locally()`: an event this process has just
    committed, handed over with its envelope (validated when it was published).

    Nothing is read back: no handler can have seen the event yet, so none has
    a `Delivery` row to consult. Should a sweep take the row meanwhile (this
    path outlived the grace period), the inbox absorbs the second delivery.
    """
    results = [
        consumer.consume(sub, envelope, fresh=True) for sub in bus.subscriptions_for(envelope.type)
    ]
    _mark_delivered(alias, envelope.id, results)


def _mark_delivered(alias: str, event_id, results: list) -> None:

    failures = [r for r in results if r.outcome in (consumer.Outcome.RETRY, consumer.Outcome.DEAD)]
    _mark_published(
        alias,
        where={"id": event_id},
        last_error="\n".join(f"{r.handler}: {r.error}" for r in failures),
    )


def _mark_published(alias: str, *, where: dict, last_error: str = "", **more) -> None:
    """Mark outbox rows published, counting the attempt that took them there."""
    from .models import OutboxEvent

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


def _record_publish(alias: str, ids: list, result) -> tuple[list, list]:
    """
    Mark the rows the broker confirmed published (those still pending) and
    count an attempt, with the error, on the others; return (done, failed).
    """
    from .models import OutboxEvent

    confirmed = {str(event_id) for event_id in result.confirmed}
    done = [event_id for event_id in ids if str(event_id) in confirmed]
    failed = [event_id for event_id in ids if str(event_id) not in confirmed]
    _mark_published(
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


class CeleryTransport(Transport):
    """
    The relay publishes to the broker; Celery workers run the handlers.

    `committed()` is the relay's fast path: it queues the envelopes a
    transaction has just committed for this process's relay thread
    (`relay.Outlet`) and returns, so a request never waits for the broker.
    The thread publishes whatever has accumulated with pipelined publisher
    confirms and marks the confirmed rows published with one UPDATE
    (`publish_committed()`). If the broker fails, the thread backs off for a
    few seconds; the rows stay pending and the sweep publishes them.
    """

    name = "celery"
    BREAKER_SECONDS = 5.0
    # how long a process that exits waits for its relay thread to publish what it committed
    FLUSH_AT_EXIT_SECONDS = 5.0

    def __init__(self) -> None:
        self._broken_until = 0.0
        self._outlet = None
        self._outlet_lock = threading.Lock()

    def committed(
        self, alias: str, event_ids: Iterable[UUID], envelopes: list | None = None
    ) -> None:
        if envelopes is not None:
            if not self.outlet().put(alias, list(envelopes)):
                logger.warning("Relay queue full: events of %s are left to the sweep", alias)
            return
        # rows handed over by id (the admin's "deliver again"): read, lock and publish them now
        if time.monotonic() < self._broken_until:
            return
        try:
            self.publish(alias, ids=list(event_ids))
        except Exception:  # never let the broker break the caller's request
            self._broken_until = time.monotonic() + self.BREAKER_SECONDS
            logger.exception("Publishing events of %s failed; the relay sweep will retry", alias)

    def outlet(self):
        """This process's relay thread, started on first use (and anew in a forked child)."""
        from .relay import Outlet

        outlet = self._outlet
        if outlet is None or not outlet.alive():
            with self._outlet_lock:
                outlet = self._outlet
                if outlet is None or not outlet.alive():
                    outlet = self._outlet = Outlet(
                        self.publish_committed,
                        limit=relay_batch(),
                        exit_timeout=self.FLUSH_AT_EXIT_SECONDS,
                    )
        return outlet

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the relay thread handled everything committed so far."""
        outlet = self._outlet
        if outlet is None or not outlet.alive():
            return True
        return outlet.flush(timeout)

    def deliver_pending(self, alias: str, *, limit: int = 500, older_than=None) -> int:
        total = self.republish_lost(alias)
        while True:
            count = self.publish(alias, older_than=older_than, limit=min(limit, relay_batch()))
            total += count
            if count < min(limit, relay_batch()) or total >= limit:
                return total

    def publish(self, alias: str, *, ids=None, older_than=None, limit=None) -> int:
        """
        Publish pending rows of `alias` and mark them published once confirmed.

        The rows stay locked while they are published, and are marked in the
        same transaction: a crash at any point leaves them pending (a later
        sweep publishes them again; the inbox absorbs the duplicate).
        """
        from . import broker

        with transaction.atomic(using=alias):
            rows = pending_rows(alias, ids=ids, older_than=older_than, limit=limit)
            if not rows:
                return 0
            result = broker.event_publisher().publish([row.envelope() for row in rows])
            # recorded on the rows (committed here), raised after the commit
            done, failed = _record_publish(alias, [row.id for row in rows], result)
        if failed:
            raise PublishError(
                f"published {len(done)} of {len(rows)} event(s) of {alias}: {result.error}"
            )
        return len(done)

    def publish_committed(self, alias: str, envelopes: list) -> int:
        """
        The relay thread's work: publish rows this process has just committed,
        then mark the confirmed ones with one UPDATE.

        No lock and no read: nobody else knows these rows yet, and sweeps only
        take rows older than the grace period. Should this path be slower than
        that, a sweep may publish a row as well; the inbox drops the copy. A
        crash before the mark leaves the rows pending for the sweep.
        """
        from . import broker

        if time.monotonic() < self._broken_until:
            return 0  # the broker just failed: the sweep publishes these once it is back
        result = broker.event_publisher().publish(envelopes)
        done, failed = _record_publish(alias, [e.id for e in envelopes], result)
        if result.error:
            self._broken_until = time.monotonic() + self.BREAKER_SECONDS
        if failed:
            raise PublishError(
                f"published {len(done)} of {len(envelopes)} event(s) of {alias}: {result.error}"
            )
        return len(done)

    def republish_lost(self, alias: str) -> int:
        """
        Publish again what a restarted Redis lost.

        Rows stamped with another Redis `run_id` within the replay window were
        accepted by a broker instance that no longer exists; without
        persistence their messages are gone. They are set pending again and the
        sweep publishes them (consumers drop the copies they already applied).
        """
        from . import broker
        from .models import OutboxEvent

        window = float(settings.CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW)
        app = broker.celery_app()
        with app.connection_for_write() as conn:
            if not broker.is_redis(conn):
                return 0
            conn.ensure_connection(max_retries=1, timeout=2)
            current = broker.epoch(conn)
        if not current:
            return 0
        lost = (
            OutboxEvent.objects.using(alias)
            .filter(
                status=OutboxEvent.Status.PUBLISHED,
                published_at__gte=timezone.now() - timedelta(seconds=window),
            )
            .exclude(broker_epoch__in=["", current])
        )
        count = lost.update(status=OutboxEvent.Status.PENDING, broker_epoch="")
        if count:
            broker.forget_topology()
            logger.warning("Redis restarted: publishing %d event(s) of %s again", count, alias)
        return 0  # the rows are pending again; the sweep that follows publishes them

    def retry_due(self, alias: str) -> int:
        """
        Send again retries whose message never arrived (a worker died after
        recording the failure, the broker lost it): overdue by a margin, so a
        retry merely waiting in a busy queue is not duplicated every sweep.
        """
        from . import broker

        margin = timedelta(seconds=float(settings.CLEAVE_EVENT_REDELIVER_AFTER))
        due = consumer.due_deliveries(alias, overdue_by=margin)
        for delivery in due:
            broker.send_to_context(
                delivery.context, delivery.get_envelope(), handlers=[delivery.handler]
            )
            # push the deadline so the next sweep waits another margin
            type(delivery).objects.using(alias).filter(pk=delivery.pk).update(
                next_attempt_at=timezone.now(), updated_at=timezone.now()
            )
        return len(due)

    def redrive(self, deliveries: list) -> int:
        from . import broker

        for delivery in deliveries:
            broker.send_to_context(
                delivery.context, delivery.get_envelope(), handlers=[delivery.handler]
            )
        return len(deliveries)


_TRANSPORTS = {
    "inprocess": "cleave.events.transports.InProcessTransport",
    "celery": "cleave.events.transports.CeleryTransport",
}

_instance: Transport | None = None
_instance_key: str | None = None


def get_transport() -> Transport:
    global _instance, _instance_key
    key = settings.CLEAVE_EVENT_TRANSPORT
    if _instance is None or _instance_key != key:
        try:
            path = _TRANSPORTS[key]
        except KeyError:
            raise ImproperlyConfigured(
                f"CLEAVE_EVENT_TRANSPORT={key!r} is not one of {sorted(_TRANSPORTS)}"
            ) from None
        _instance = import_string(path)()
        _instance_key = key
    return _instance


def sweep(aliases: Iterable[str] | None = None, *, grace: timedelta | None = None) -> dict:
    """
    One relay sweep over every local alias: pending rows older than the grace
    period, then due retries. Returns counts per alias.
    """
    from cleave.contexts import all_contexts

    transport = get_transport()
    grace = relay_grace() if grace is None else grace
    counts = {}
    for alias in aliases if aliases is not None else [c.database for c in all_contexts()]:
        counts[alias] = {"published": 0, "retried": 0}
        try:
            counts[alias]["published"] = transport.deliver_pending(alias, older_than=grace)
        except Exception:
            logger.exception("Relay sweep of %s failed", alias)
        try:
            counts[alias]["retried"] = transport.retry_due(alias)
        except Exception:
            logger.exception("Retrying due deliveries of %s failed", alias)
    return counts
