"""
The inbox: apply one handler to one event exactly once in effect.

The inbox row and the handler's writes share one transaction on the
subscriber's alias; a second delivery of the same event finds the row and
does nothing. What a failure means (retry, dead letter) is the consumer's.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from cleave.core import db, flow
from cleave.messaging import subscriptions, versions
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import InboxRecord
from cleave.observability import tracing


class HandlerOutcome:
    APPLIED = "applied"
    DUPLICATE = "duplicate"


def apply(sub: subscriptions.Subscription, envelope: Envelope) -> str:
    """
    Run one handler for one event, exactly once in effect.

    The inbox row and the handler's writes share one transaction on the
    subscriber's alias; a second delivery finds the row and does nothing.
    The handler gets the event at the version it reads, validated
    (`cleave.messaging.versions`). Raises whatever the handler raised (the
    transport decides about retries).
    """
    return apply_validated(sub, versions.shaped(sub, envelope))


def apply_validated(sub: subscriptions.Subscription, envelope: Envelope) -> str:
    """`apply()` for an envelope the caller has already validated at `sub`'s version."""
    alias = sub.context.database
    with transaction.atomic(using=alias):
        # insert-or-ignore: a second delivery inserts nothing and changes nothing
        recorded = db.insert(
            InboxRecord,
            alias,
            {
                "event_id": envelope.id,
                "handler": sub.name,
                "event_type": envelope.type,
                "source": envelope.source,
                "processed_at": timezone.now(),
            },
            ignore_conflicts=True,
        )
        if not recorded:
            return HandlerOutcome.DUPLICATE
        with (
            flow.flow(correlation_id=envelope.correlation_id, causation_id=envelope.id),
            tracing.span_from_traceparent(
                f"handle {envelope.type}",
                envelope.traceparent,
                **{"cleave.event_id": envelope.id, "cleave.handler": sub.name},
            ),
        ):
            sub.func(envelope)
    return HandlerOutcome.APPLIED
