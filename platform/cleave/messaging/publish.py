"""
Publishing: the top of the event package, what a context's command calls.

`publish()` validates the payload against the registered schema (and the
older versions its contract downcasts to against theirs) and writes an outbox
row in the publishing context's alias, inside the caller's transaction.
Nothing leaves before commit: the transport is told about the row only through
`transaction.on_commit`. Subscribing is the registry's (`@subscriber`), and
running a handler exactly once in effect is the consumer's.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone
from opentelemetry import propagate

from cleave.core import db, flow
from cleave.core.declarations import EventType, type_name
from cleave.core.registry import alias_for
from cleave.messaging import types
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import OutboxEvent
from cleave.messaging.transports import get_transport
from cleave.observability.metrics import EVENTS_PUBLISHED

__all__ = ["publish"]

logger = logging.getLogger(__name__)


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def publish(
    event: EventType | str,
    data: dict[str, Any],
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    """
    Write an event to the outbox of the context that owns it: `event` is the
    type's declaration in its context's contract (`publish(ORDER_PLACED, ...)`;
    a name is looked up, for the platform's own tests and tools).

    Call it inside that context's `transaction.atomic(using=alias)`: the row
    commits or rolls back with the business change, and the transport hears of
    it only after commit. An event that the transport has nowhere to carry
    (in-process, no local subscriber) is written already published: it is
    kept in the event log, for replay, and nothing waits for it.
    """
    event_type = types.get(type_name(event))
    payload = _jsonable(data)
    event_type.validate(payload)
    # the older versions consumers may still read: a downcaster's bug fails here, in the
    # publisher's transaction, not in a consumer
    downcasts = types.downcasts(event_type, payload, event_type.version) or None
    current = flow.current()
    alias = alias_for(event_type.context)
    now = timezone.now()
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type=event_type.name,
        version=event_type.version,
        source=event_type.context,
        timestamp=now.isoformat(),
        data=payload,
        correlation_id=correlation_id or current.correlation_id or flow.new_id(),
        causation_id=causation_id or current.causation_id or None,
        traceparent=_current_traceparent() or None,
        downcasts=downcasts,
    )
    transport = get_transport()
    settled = not transport.carries(envelope.type)
    db.insert(
        OutboxEvent,
        alias,
        {
            "id": envelope.id,
            "type": envelope.type,
            "version": envelope.version,
            "source": envelope.source,
            "data": payload,
            "correlation_id": envelope.correlation_id,
            "causation_id": envelope.causation_id or "",
            "traceparent": envelope.traceparent or "",
            "occurred_at": now,
            "status": OutboxEvent.Status.PUBLISHED if settled else OutboxEvent.Status.PENDING,
            "published_at": now if settled else None,
            "attempts": 0,
            "last_error": "",
            "broker_epoch": "",
        },
    )
    EVENTS_PUBLISHED.labels(envelope.type, envelope.source).inc()
    if not settled:
        transaction.on_commit(
            lambda: transport.committed(alias, [envelope.id], envelopes=[envelope]), using=alias
        )
    return envelope


def _current_traceparent() -> str | None:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")
