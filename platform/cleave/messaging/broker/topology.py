"""
The broker topology of the Celery transport.

- one durable **topic exchange** `cleave.events`; a message's routing key is
  its event type;
- one durable **queue per context**, named after the label, bound to the
  exchange only with the patterns of that context's subscriptions (an
  fnmatch glob becomes a topic pattern: `order.*` → `order.#`, `*` → `#`);
  the worker filters exactly, so a binding only has to be a superset;
- one **dead-letter exchange** `cleave.dead` (direct) and a queue
  `<label>.dead` per context, receiving what the broker dead-letters
  (a message rejected without requeue, e.g. for an unknown task);
- retries and redrives reach one context's queue by its name (Celery's
  anonymous direct route), never through the topic exchange, so the other
  subscribing contexts do not get them. (Celery also binds each queue to its
  default direct exchange with the queue's own name as key: harmless.)

`CLEAVE_EVENT_QUEUE_PREFIX` is prepended to every exchange and queue name, so
several installations (or test runs) can share one broker.

Bindings need the subscription registry, so the queues are built after Django
is set up: `install()` adds them to a Celery app (a worker calls it before it
selects the queues named by `-Q`), `declare()` creates them on the broker.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from django.conf import settings
from kombu import Exchange, Queue, binding

from cleave.core.registry import all_contexts
from cleave.messaging.subscriptions import all_subscriptions

EVENTS_EXCHANGE = "cleave.events"
DEAD_EXCHANGE = "cleave.dead"
TASK_NAME = "cleave.events.handle"
_GLOB_CHARS = frozenset("*?[")


def prefix() -> str:
    return settings.CLEAVE_EVENT_QUEUE_PREFIX or ""


def exchange_name() -> str:
    return f"{prefix()}{EVENTS_EXCHANGE}"


def dead_exchange_name() -> str:
    return f"{prefix()}{DEAD_EXCHANGE}"


def queue_name(label: str) -> str:
    return f"{prefix()}{label}"


def dead_queue_name(label: str) -> str:
    return f"{prefix()}{label}.dead"


def label_for_queue(name: str) -> str | None:
    """The context label a queue belongs to, or None (the default queue, a dead queue)."""
    if not name.startswith(prefix()):
        return None
    label = name[len(prefix()) :]
    return label if label in {cfg.label for cfg in all_contexts()} else None


def topic_pattern(glob: str) -> str:
    """
    Translate a subscription glob into an AMQP topic pattern that matches at least as much.

    `*` in a glob matches dots too, so every segment holding a wildcard becomes
    `#` (zero or more words); exact segments stay.
    """
    if not _GLOB_CHARS & set(glob):
        return glob
    words: list[str] = []
    for word in glob.split("."):
        word = "#" if _GLOB_CHARS & set(word) else word
        if not (word == "#" and words and words[-1] == "#"):
            words.append(word)
    return ".".join(words)


def context_patterns(label: str) -> list[str]:
    """The topic patterns a context's queue is bound with: one per subscribed glob."""
    patterns = set()
    for sub in all_subscriptions():
        try:
            owner = sub.context.label
        except LookupError:
            continue
        if owner == label:
            patterns.add(topic_pattern(sub.pattern))
    return sorted(patterns)


def events_exchange() -> Exchange:
    return Exchange(exchange_name(), type="topic", durable=True, delivery_mode=2)


def dead_exchange() -> Exchange:
    return Exchange(dead_exchange_name(), type="direct", durable=True, delivery_mode=2)


def context_queue(label: str) -> Queue:
    """The durable queue of one context, bound to the event types it subscribes to."""
    exchange = events_exchange()
    name = queue_name(label)
    return Queue(
        name,
        routing_key=name,
        bindings=[binding(exchange, routing_key=p) for p in context_patterns(label)],
        durable=True,
        queue_arguments={
            "x-dead-letter-exchange": dead_exchange_name(),
            "x-dead-letter-routing-key": dead_queue_name(label),
        },
    )


def dead_queue(label: str) -> Queue:
    return Queue(
        dead_queue_name(label),
        exchange=dead_exchange(),
        routing_key=dead_queue_name(label),
        durable=True,
    )


def local_labels() -> list[str]:
    return [cfg.label for cfg in all_contexts()]


def install(app) -> list[Queue]:
    """
    Add every local context's queue to a Celery app's queue table.

    Tasks sent with `queue="<label>"` then go to that queue through the default
    exchange (Celery's anonymous direct route), and `celery worker -Q <label>`
    finds it. Idempotent; returns the queues.
    """
    table = app.amqp.queues
    return [table.add(context_queue(label)) for label in local_labels()]


def declare(connection, labels: Iterable[str] | None = None) -> list[str]:
    """Create the exchanges, queues, bindings and dead-letter queues on the broker."""
    labels = list(labels) if labels is not None else local_labels()
    channel = connection.default_channel
    for exchange in (events_exchange(), dead_exchange()):
        exchange(channel).declare()
    declared = []
    for label in labels:
        context_queue(label)(channel).declare()
        dead_queue(label)(channel).declare()
        declared.append(label)
    return declared


def matches(pattern: str, type_name: str) -> bool:
    """Whether a subscription glob matches an event type (the worker's exact filter)."""
    return fnmatch.fnmatchcase(type_name, pattern)
