"""
Publishing and subscribing.

`publish()` validates the payload against the registered schema and writes an
outbox row in the publishing context's alias, inside the caller's transaction.
Nothing leaves before commit: the transport is told about the row only through
`transaction.on_commit`. `@subscriber("type")` registers a handler; the bus runs
each handler in its own transaction on its own context's alias and records the
event id in that alias's inbox in the same transaction (exactly-once effect).
"""

from __future__ import annotations

import fnmatch
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from cleave import db, flow, observability
from cleave.contexts import ContextConfig, alias_for, context_for_module
from cleave.metrics import EVENTS_PUBLISHED

from . import registry
from .envelope import Envelope

logger = logging.getLogger(__name__)

Handler = Callable[[Envelope], None]


@dataclass(frozen=True)
class Subscription:
    pattern: str
    func: Handler

    @property
    def name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @cached_property
    def context(self) -> ContextConfig:
        cfg = context_for_module(self.func.__module__)
        if cfg is None:
            raise LookupError(f"Subscriber {self.name} does not belong to a local context")
        return cfg

    def matches(self, type_name: str) -> bool:
        return fnmatch.fnmatchcase(type_name, self.pattern)


_subscriptions: list[Subscription] = []


def subscriber(*patterns: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as a handler for event types (globs allowed)."""
    if not patterns:
        raise TypeError("subscriber() needs at least one event type")

    def decorate(func: Handler) -> Handler:
        for pattern in patterns:
            sub = Subscription(pattern, func)
            if not any(s.pattern == pattern and s.name == sub.name for s in _subscriptions):
                _subscriptions.append(sub)
        return func

    return decorate


_found: dict[tuple[str, str | None], tuple[tuple, list[Subscription]]] = {}


def subscriptions_for(
    type_name: str, *, subscriber_context: str | None = None
) -> list[Subscription]:
    """The local subscriptions that receive `type_name` (optionally of one context)."""
    from django.apps import apps

    # remembered per type until a subscription or the installed apps change
    signature = (tuple(map(id, _subscriptions)), id(apps.app_configs))
    key = (type_name, subscriber_context)
    hit = _found.get(key)
    if hit is not None and hit[0] == signature:
        return list(hit[1])
    found = _subscriptions_for(type_name, subscriber_context)
    if len(_found) > 4096:
        _found.clear()
    _found[key] = (signature, found)
    return list(found)


def _subscriptions_for(type_name: str, subscriber_context: str | None) -> list[Subscription]:
    from cleave.contexts import is_local

    found = []
    for sub in _subscriptions:
        module_context = context_for_module(sub.func.__module__)
        if module_context is None or not is_local(module_context.label):
            continue
        if subscriber_context and module_context.label != subscriber_context:
            continue
        if sub.matches(type_name):
            found.append(sub)
    return found


def all_subscriptions() -> list[Subscription]:
    return list(_subscriptions)


def _jsonable(data: Any) -> Any:
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def publish(
    type_name: str,
    data: dict[str, Any],
    *,
    correlation_id: str | None = None,
    causation_id: str | None = None,
) -> Envelope:
    """
    Write an event to the outbox of the context that owns `type_name`.

    Call it inside that context's `transaction.atomic(using=alias)`: the row
    commits or rolls back with the business change, and the transport hears of
    it only after commit. An event that the transport has nowhere to carry
    (in-process, no local subscriber) is written already published: it is
    kept in the event log, for replay, and nothing waits for it.
    """
    from .models import OutboxEvent
    from .transports import get_transport

    event_type = registry.get(type_name)
    payload = _jsonable(data)
    event_type.validate(payload)
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
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


class HandlerOutcome:
    APPLIED = "applied"
    DUPLICATE = "duplicate"


def apply(sub: Subscription, envelope: Envelope) -> str:
    """
    Run one handler for one event, exactly once in effect.

    The inbox row and the handler's writes share one transaction on the
    subscriber's alias; a second delivery finds the row and does nothing.
    Raises whatever the handler raised (the transport decides about retries).
    """
    event_type = registry.find(envelope.type)
    if event_type is not None:
        event_type.validate(envelope.data)
    return apply_validated(sub, envelope)


def apply_validated(sub: Subscription, envelope: Envelope) -> str:
    """`apply()` for an envelope whose payload the caller has already validated."""
    from .models import InboxRecord

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
            observability.span_from_traceparent(
                f"handle {envelope.type}",
                envelope.traceparent,
                **{"cleave.event_id": envelope.id, "cleave.handler": sub.name},
            ),
        ):
            sub.func(envelope)
    return HandlerOutcome.APPLIED
