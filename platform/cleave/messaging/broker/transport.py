"""
The Celery transport (`CLEAVE_EVENT_TRANSPORT=celery`): right after the
commit, a relay thread of this process publishes the rows to the broker's
topic exchange (marking them published only once the broker confirmed) and
Celery workers consume one durable queue per context
(`cleave.runtime.tasks.handle_event`, `cleave.messaging.broker.receiver`). Failures are retried by
the worker with backoff, then dead-lettered.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cleave.core import threads
from cleave.messaging import delivery as consumer
from cleave.messaging.broker import publisher
from cleave.messaging.models import OutboxEvent
from cleave.messaging.outbox import pending_rows, record_publish, relay_batch
from cleave.messaging.relay import Outlet
from cleave.messaging.transports import PublishError, Transport

logger = logging.getLogger("cleave.events")


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

    def outlet(self) -> Outlet:
        """This process's relay thread, started on first use (and anew in a forked child)."""
        return threads.per_process(
            Outlet,
            self.publish_committed,
            key=id(self),
            limit=relay_batch(),
            exit_timeout=self.FLUSH_AT_EXIT_SECONDS,
        )

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the relay thread handled everything committed so far."""
        running = [s for s in threads.running() if isinstance(s, Outlet)]
        return all(outlet.flush(timeout) for outlet in running)

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
        with transaction.atomic(using=alias):
            rows = pending_rows(alias, ids=ids, older_than=older_than, limit=limit)
            if not rows:
                return 0
            result = publisher.event_publisher().publish([row.envelope() for row in rows])
            # recorded on the rows (committed here), raised after the commit
            done, failed = record_publish(alias, [row.id for row in rows], result)
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
        if time.monotonic() < self._broken_until:
            return 0  # the broker just failed: the sweep publishes these once it is back
        result = publisher.event_publisher().publish(envelopes)
        done, failed = record_publish(alias, [e.id for e in envelopes], result)
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
        window = float(settings.CLEAVE_EVENT_REDIS_REPUBLISH_WINDOW)
        app = publisher.celery_app()
        with app.connection_for_write() as conn:
            if not publisher.is_redis(conn):
                return 0
            conn.ensure_connection(max_retries=1, timeout=2)
            current = publisher.epoch(conn)
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
            publisher.forget_topology()
            logger.warning("Redis restarted: publishing %d event(s) of %s again", count, alias)
        return 0  # the rows are pending again; the sweep that follows publishes them

    def retry_due(self, alias: str) -> int:
        """
        Send again retries whose message never arrived (a worker died after
        recording the failure, the broker lost it): overdue by a margin, so a
        retry merely waiting in a busy queue is not duplicated every sweep.
        """
        margin = timedelta(seconds=float(settings.CLEAVE_EVENT_REDELIVER_AFTER))
        due = consumer.due_deliveries(alias, overdue_by=margin)
        for delivery in due:
            publisher.send_to_context(
                delivery.context, delivery.get_envelope(), handlers=[delivery.handler]
            )
            # push the deadline so the next sweep waits another margin
            type(delivery).objects.using(alias).filter(pk=delivery.pk).update(
                next_attempt_at=timezone.now(), updated_at=timezone.now()
            )
        return len(due)

    def redrive(self, deliveries: list) -> int:
        for delivery in deliveries:
            publisher.send_to_context(
                delivery.context, delivery.get_envelope(), handlers=[delivery.handler]
            )
        return len(deliveries)
