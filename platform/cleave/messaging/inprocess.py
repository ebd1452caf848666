"""
The in-process transport (`CLEAVE_EVENT_TRANSPORT=inprocess`, the default):
right after the publisher's commit, this process runs every local subscriber,
each in its own transaction on its own alias. A failing handler gets a
`Delivery` row and is retried by the relay sweep with backoff; after the last
attempt it is dead-lettered.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from django.utils import timezone

from cleave.messaging import delivery as consumer
from cleave.messaging import subscriptions
from cleave.messaging.models import OutboxEvent
from cleave.messaging.outbox import mark_published
from cleave.messaging.transports import Transport

logger = logging.getLogger("cleave.events")


class InProcessTransport(Transport):
    name = "inprocess"

    def carries(self, type_name: str) -> bool:
        return bool(subscriptions.subscriptions_for(type_name))

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
    row = OutboxEvent.objects.using(alias).filter(pk=event_id).first()
    if row is None or row.status == OutboxEvent.Status.PUBLISHED:
        return row is not None
    envelope = row.envelope()
    results = [
        consumer.consume(sub, envelope) for sub in subscriptions.subscriptions_for(envelope.type)
    ]
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
    found = subscriptions.subscriptions_for(envelope.type)
    results = [consumer.consume(sub, envelope, fresh=True) for sub in found]
    _mark_delivered(alias, envelope.id, results)


def _mark_delivered(alias: str, event_id, results: list) -> None:

    failures = [r for r in results if r.outcome in (consumer.Outcome.RETRY, consumer.Outcome.DEAD)]
    mark_published(
        alias,
        where={"id": event_id},
        last_error="\n".join(f"{r.handler}: {r.error}" for r in failures),
    )
