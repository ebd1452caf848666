"""
The consuming side of the Celery transport: what `cleave.events.handle` does
in a worker (`celery -A config worker -Q <context>...`).

A message from the topic exchange carries no queue name, so the worker runs
the event for the subscribers of every context whose queue it consumes; a
worker consuming several queues gets one copy per queue and the inbox (and
the `Delivery` bookkeeping) makes the extra copies no-ops. A retry names its
context and handlers and goes to that context's queue only.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from celery.exceptions import Reject
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.utils import timezone

from cleave.core.registry import all_contexts, get_context
from cleave.messaging import delivery, subscriptions
from cleave.messaging.broker import publisher, topology
from cleave.messaging.envelope import Envelope

logger = logging.getLogger("cleave.events")

# How long a worker waits before handing back a message it could not process
# at all (its database is down): the broker redelivers it, nothing is lost.
REQUEUE_PAUSE = 2.0


def consumed_labels(app) -> list[str]:
    """The local contexts whose queues this worker consumes (all of them if none is named)."""
    labels = []
    for name in app.amqp.queues.consume_from:
        label = topology.label_for_queue(name)
        if label and label not in labels:
            labels.append(label)
    return labels or [cfg.label for cfg in all_contexts()]


def check_queues(app) -> None:
    """
    Refuse to consume a queue of a context this process does not serve, or a
    queue that is no context's at all: with `CLEAVE_EVENT_QUEUE_PREFIX` set,
    `-Q orders` would consume a new, empty queue while the orders events pile
    up in `<prefix>orders`.
    """
    local = {cfg.label for cfg in all_contexts()}
    known = set(settings.CLEAVE_ALL_CONTEXTS)
    default = getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery")
    allowed = {topology.queue_name(label) for label in known} | {default}
    for name in app.amqp.queues.consume_from:
        if name not in allowed:
            hint = ""
            if name in known:
                hint = f" (the {name} context's queue is {topology.queue_name(name)!r})"
            raise ImproperlyConfigured(
                f"This worker would consume queue {name!r}, which is no context's queue"
                f"{hint}. Start workers with `python manage.py worker --contexts <labels>`."
            )
        label = name[len(topology.prefix()) :] if name.startswith(topology.prefix()) else None
        if label in known and label not in local:
            raise ImproperlyConfigured(
                f"This worker consumes queue {name!r} but context {label!r} is not in "
                "CLEAVE_CONTEXTS: its handlers and database are not available here."
            )


def parse(raw: Any) -> Envelope:
    if not isinstance(raw, dict):
        raise ValueError(f"an event envelope is an object, not {type(raw).__name__}")
    envelope = Envelope.from_dict(raw)
    uuid.UUID(str(envelope.id))
    if not isinstance(envelope.type, str) or not envelope.type:
        raise ValueError("an event envelope needs a type")
    if not isinstance(envelope.data, dict):
        raise ValueError("an event's data is an object")
    return envelope


def handle(
    app, raw: Any, *, context: str | None = None, handlers: list[str] | None = None
) -> list[delivery.Result]:
    """
    Run one event message: one envelope, or a list of envelopes (a batch).

    Each event is attempted on its own (its own transaction per handler):
    a malformed envelope or a failing handler in a batch does not hold up
    its neighbours. Handler failures are recorded and retried, never raised;
    anything else (a database that is down) raises `Reject` with requeue,
    after a pause, so the broker keeps the message (the events of a batch
    that were applied meanwhile are dropped by the inbox when it returns).
    """
    if context is not None:
        try:
            get_context(context)
        except LookupError:
            raise Reject(f"context {context!r} is not served here", requeue=False) from None
    labels = [context] if context else consumed_labels(app)
    results: list[delivery.Result] = []
    retries: list[tuple[Envelope, list[delivery.Result]]] = []
    try:
        envelopes = []
        for item in raw if isinstance(raw, list) and raw else [raw]:
            try:
                envelopes.append(parse(item))
            except (TypeError, ValueError) as exc:
                for label in labels:
                    delivery.dead_letter_malformed(
                        get_context(label).database, label, item, str(exc)
                    )
        by_event: dict[str, list[delivery.Result]] = {e.id: [] for e in envelopes}
        for label in labels:
            for sub, batch in _subscribers(label, envelopes, handlers):
                for envelope, result in zip(batch, delivery.consume_many(sub, batch), strict=True):
                    by_event[envelope.id].append(result)
        for envelope in envelopes:
            results.extend(by_event[envelope.id])
            retries.append((envelope, by_event[envelope.id]))
    except Exception as exc:
        logger.exception("Could not process event message; handing it back to the broker")
        # connections are reused between tasks (CELERY_DB_REUSE_MAX): a broken
        # one must not fail the next messages too
        connections.close_all()
        time.sleep(REQUEUE_PAUSE)
        raise Reject(exc, requeue=True) from exc
    for envelope, outcomes in retries:
        _schedule_retries(envelope, outcomes)
    return results


def _subscribers(
    label: str, envelopes: list[Envelope], handlers: list[str] | None
) -> list[tuple[subscriptions.Subscription, list[Envelope]]]:
    """Each subscription of `label` with the events (in message order) it receives."""
    found: dict[str, tuple[subscriptions.Subscription, list[Envelope]]] = {}
    for envelope in envelopes:
        for sub in subscriptions.subscriptions_for(envelope.type, subscriber_context=label):
            if handlers and sub.name not in handlers:
                continue
            found.setdefault(sub.name, (sub, []))[1].append(envelope)
    return list(found.values())


def _schedule_retries(envelope: Envelope, results: list[delivery.Result]) -> None:
    by_context: dict[str, list[delivery.Result]] = {}
    for result in results:
        if result.outcome == delivery.Outcome.RETRY:
            by_context.setdefault(result.context, []).append(result)
    for label, failed in by_context.items():
        due = min(r.next_attempt_at for r in failed if r.next_attempt_at)
        countdown = max(0.0, (due - timezone.now()).total_seconds())
        try:
            publisher.send_to_context(
                label, envelope, handlers=[r.handler for r in failed], countdown=countdown
            )
        except Exception:  # recorded as due: the relay sweep sends it when it is overdue
            logger.exception("Could not schedule the retry of %s for %s", envelope.id, label)
