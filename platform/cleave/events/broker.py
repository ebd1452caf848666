"""
Talking to the broker for the Celery transport: the project's Celery app,
publishing an event to the topic exchange, sending one context a retry or a
redrive, and knowing which broker instance accepted a message.

Every message is a plain Celery task message for `cleave.events.handle`, so
workers are ordinary `celery -A config worker -Q <context>` processes.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from kombu.utils.uuid import uuid

from . import topology
from .envelope import Envelope

logger = logging.getLogger("cleave.events")

# Publishing from a request must not hang on a broker that is away: a couple of
# quick reconnects, then the row stays pending for the sweeper.
FAST_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
SWEEP_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.5,
    "interval_max": 1,
}

_lock = threading.Lock()
_installed_apps: set[int] = set()
_declared: set[tuple[str, str]] = set()


def celery_app():
    """The project's Celery app (`CLEAVE_CELERY_APP`, by default `config.celery.app`)."""
    app = import_string(getattr(settings, "CLEAVE_CELERY_APP", "config.celery.app"))
    if id(app) not in _installed_apps:
        with _lock:
            if id(app) not in _installed_apps:
                topology.install(app)
                _installed_apps.add(id(app))
    return app


def is_redis(connection) -> bool:
    return connection.transport_cls in {"redis", "rediss", "sentinel"} or (
        getattr(connection.transport, "driver_type", "") == "redis"
    )


def epoch(connection) -> str:
    """
    Which broker instance this connection talks to, when that matters.

    Redis without persistence forgets its queues (and bindings) when it
    restarts; its `run_id` changes at every start, so a row stamped with an
    older `run_id` may have been lost. RabbitMQ keeps durable queues and
    persistent, confirmed messages across restarts: the epoch is "".
    """
    if not is_redis(connection):
        return ""
    client = connection.default_channel.client
    return str(client.info("server").get("run_id", ""))


@contextlib.contextmanager
def producer() -> Iterator[Any]:
    """A pooled producer; its connection has publisher confirms on RabbitMQ."""
    app = celery_app()
    with app.producer_or_acquire() as prod:
        yield prod


def ensure_topology(connection, broker_epoch: str) -> None:
    """Declare exchanges, queues and bindings once per broker instance and process."""
    key = (connection.as_uri(), broker_epoch)
    if key in _declared:
        return
    topology.declare(connection)
    _declared.add(key)


def forget_topology() -> None:
    """Declare again on the next publish (after a broker error, it may have restarted)."""
    _declared.clear()


def publish_event(prod, envelope: Envelope, *, retry_policy: dict[str, Any]) -> None:
    """
    Publish one event to the topic exchange, routing key = its type.

    Returns once the broker confirmed it (RabbitMQ: `confirm_publish`), raises
    otherwise. The broker copies it into every context queue bound to the type.
    The message is Celery's own task message (built by Celery), published
    without `send_task`'s routing and signals, which the topic route needs not.
    """
    app = celery_app()
    headers, properties, body, _ = app.amqp.create_task_message(
        uuid(),
        topology.TASK_NAME,
        [envelope.to_dict()],
        {},
        ignore_result=True,
        argsrepr=f"<{envelope.type} {envelope.id}>",
        kwargsrepr="{}",
    )
    headers.update(cleave_event_id=envelope.id, cleave_event_type=envelope.type)
    prod.publish(
        body,
        exchange=topology.exchange_name(),
        routing_key=envelope.type,
        headers=headers,
        serializer="json",
        delivery_mode=2,
        retry=True,
        retry_policy=retry_policy,
        **properties,
    )


def send_to_context(
    label: str,
    envelope: Envelope,
    *,
    handlers: list[str] | None = None,
    countdown: float = 0,
) -> None:
    """
    Send one event to one context's queue only (a retry, a redrive, a sweep).

    It goes by queue name (the default exchange), never through the topic
    exchange, so the other subscribing contexts do not get it again.
    """
    app = celery_app()
    app.send_task(
        topology.TASK_NAME,
        args=[envelope.to_dict()],
        kwargs={"context": label, "handlers": handlers},
        queue=topology.queue_name(label),
        countdown=countdown if countdown > 0 else None,
        retry=True,
        retry_policy=SWEEP_RETRY_POLICY,
        delivery_mode=2,
        ignore_result=True,
        headers={"cleave_event_id": envelope.id, "cleave_event_type": envelope.type},
    )


def queue_depths(labels: list[str]) -> dict[str, tuple[int | None, int | None]]:
    """Messages waiting in each context's queue and dead-letter queue (None if unknown)."""
    app = celery_app()
    depths: dict[str, tuple[int | None, int | None]] = {}
    with app.connection_for_read() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)
        channel = conn.default_channel
        redis = is_redis(conn)
        for label in labels:
            counts: list[int | None] = []
            for name in (topology.queue_name(label), topology.dead_queue_name(label)):
                try:
                    if redis:  # an empty Redis list does not exist: count it directly
                        counts.append(int(channel.client.llen(name)))
                    else:
                        counts.append(channel.queue_declare(queue=name, passive=True).message_count)
                except Exception:  # a queue nobody declared yet
                    counts.append(None)
                    channel = conn.channel()
            depths[label] = (counts[0], counts[1])
    return depths
