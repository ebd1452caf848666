"""
Talking to the broker for the Celery transport: the project's Celery app,
publishing events to the topic exchange (`EventPublisher`), sending one
context a retry or a redrive, and knowing which broker instance accepted a
message.

Every message is a plain Celery task message for `cleave.events.handle`, so
workers are ordinary `celery -A config worker -Q <context>` processes. A
message carries one event, or several consecutive events of one type
(`CLEAVE_EVENT_MESSAGE_EVENTS`), which the worker runs one by one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string
from kombu import Producer
from kombu.utils.uuid import uuid
from opentelemetry import propagate
from opentelemetry.trace import SpanKind

from cleave.messaging import types
from cleave.messaging.broker import topology
from cleave.messaging.envelope import Envelope
from cleave.observability import tracing

logger = logging.getLogger("cleave.events")

# Sending a retry or a redrive: a couple of quick reconnects, then give up.
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
    app = import_string(settings.CLEAVE_CELERY_APP)
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


def events_per_message() -> int:
    """At most this many events of one type travel in one message (1: one message per event)."""
    return max(1, int(settings.CLEAVE_EVENT_MESSAGE_EVENTS))


def confirm_timeout() -> float:
    """Seconds to wait for the broker's confirms of one batch before giving it up."""
    return float(settings.CLEAVE_EVENT_CONFIRM_TIMEOUT)


def group(envelopes: list[Envelope], *, size: int) -> list[list[Envelope]]:
    """
    Consecutive events of one type, at most `size` per message, in publish order.

    Only neighbours are grouped (A1 B1 A2 makes three messages), so a
    subscriber sees them in the order they were published.
    """
    groups: list[list[Envelope]] = []
    for envelope in envelopes:
        last = groups[-1] if groups else None
        if last is not None and last[0].type == envelope.type and len(last) < size:
            last.append(envelope)
        else:
            groups.append([envelope])
    return groups


def task_message(envelopes: list[Envelope]) -> tuple[Any, dict, dict]:
    """
    Celery's own task message for `cleave.events.handle`: (body, headers, properties).

    One event travels as its envelope (the argument is an object), several as
    a list of envelopes; the worker takes both. Each carries the older versions
    its contract still downcasts to (a row the sweep publishes has none yet).
    """
    app = celery_app()
    envelopes = [types.with_downcasts(envelope) for envelope in envelopes]
    first = envelopes[0]
    if len(envelopes) == 1:
        argument: Any = first.to_dict()
        argsrepr = f"<{first.type} {first.id}>"
    else:
        argument = [envelope.to_dict() for envelope in envelopes]
        argsrepr = f"<{len(envelopes)} x {first.type} {first.id}...>"
    headers, properties, body, _ = app.amqp.create_task_message(
        uuid(),
        topology.TASK_NAME,
        [argument],
        {},
        ignore_result=True,
        argsrepr=argsrepr,
        kwargsrepr="{}",
    )
    headers.update(cleave_event_id=first.id, cleave_event_type=first.type)
    if len(envelopes) > 1:
        headers["cleave_event_count"] = len(envelopes)
    return body, headers, properties


@dataclass
class Published:
    """What one `EventPublisher.publish()` achieved."""

    confirmed: list[str] = field(default_factory=list)  # ids the broker confirmed, in order
    epoch: str = ""  # the broker instance that confirmed them (see `epoch()`)
    error: str = ""  # why the others were not confirmed


class EventPublisher:
    """
    Publish events to the topic exchange, routing key = their type, over a
    connection of its own.

    RabbitMQ: the channel is in confirm mode and the confirms are pipelined:
    every message of a batch is sent, then the broker's acks are awaited
    together (one round trip and one disk flush for the batch instead of one
    per event). kombu's `confirm_publish` transport option would wait after
    each message, so this connection turns it off and selects confirms on its
    channel itself; py-amqp reports the acks (`basic_ack`, `basic_nack`, with
    the `multiple` flag) through `channel.events`. Redis has no confirms: the
    messages are sent in one pipeline (kombu's `Producer.batch()`) and count
    as confirmed once Redis accepted it.

    Not thread-safe: each thread uses its own (`event_publisher()`).
    """

    def __init__(self) -> None:
        self._connection: Any = None
        self._channel: Any = None
        self._producer: Any = None
        self._redis = False
        self._next_tag = 0
        self._unconfirmed: dict[int, list[str]] = {}
        self._confirmed: list[str] = []
        self._refused: list[str] = []

    # --- the connection -----------------------------------------------------------------

    def _connect(self) -> None:
        app = celery_app()
        connection = app.connection_for_write()  # not connected yet: no I/O
        self._redis = is_redis(connection)
        if not self._redis:
            connection.release()
            connection = app.connection_for_write(transport_options={"confirm_publish": False})
        try:
            connection.ensure_connection(max_retries=1, timeout=connect_timeout())
            channel = connection.channel()
            if not self._redis:
                channel.confirm_select()
                channel.events["basic_ack"].add(self._on_ack)
                channel.events["basic_nack"].add(self._on_nack)
        except BaseException:
            connection.release()
            raise
        self._connection, self._channel = connection, channel
        self._producer = Producer(channel, auto_declare=False)
        self._next_tag = 0
        self._unconfirmed.clear()

    def close(self) -> None:
        """Drop the connection (the next publish opens another)."""
        connection, self._connection = self._connection, None
        self._channel = self._producer = None
        self._unconfirmed.clear()
        if connection is not None:
            with contextlib.suppress(Exception):
                connection.release()

    def _on_ack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._confirmed)

    def _on_nack(self, delivery_tag: int, multiple: bool) -> None:
        self._settle(delivery_tag, multiple, self._refused)

    def _settle(self, delivery_tag: int, multiple: bool, into: list[str]) -> None:
        tags = [t for t in self._unconfirmed if t <= delivery_tag] if multiple else [delivery_tag]
        for tag in tags:
            into.extend(self._unconfirmed.pop(tag, ()))

    # --- publishing ---------------------------------------------------------------------

    def publish(self, envelopes: list[Envelope]) -> Published:
        """
        Publish `envelopes` and return which of them the broker confirmed.

        Never raises for a broker problem: what was not confirmed is in
        `error`. A connection that had failed since its last use is replaced
        once (the broker restarted meanwhile) before giving up.
        """
        reused = self._connection is not None
        result = self._publish_once(envelopes)
        if result.error and not result.confirmed and reused:
            result = self._publish_once(envelopes)
        return result

    def _publish_once(self, envelopes: list[Envelope]) -> Published:
        self._confirmed, self._refused = [], []
        result = Published()
        try:
            if self._connection is None:
                self._connect()
            result.epoch = epoch(self._connection)
            ensure_topology(self._connection, result.epoch)
            messages = group(envelopes, size=events_per_message())
            if self._redis:
                # Producer.batch() pipelines the commands; a kombu without it sends each at once
                batching = getattr(self._producer, "batch", contextlib.nullcontext)
                with batching():
                    for batch in messages:
                        self._send(batch)
                self._confirmed = [e.id for e in envelopes]
            else:
                for batch in messages:
                    self._send(batch)
                    self._next_tag += 1
                    self._unconfirmed[self._next_tag] = [e.id for e in batch]
                self._await_confirms()
        except Exception as exc:
            forget_topology()
            self.close()
            result.error = f"{type(exc).__name__}: {exc}"
        # confirms of messages routed to several queues may come in any order
        confirmed = set(self._confirmed)
        result.confirmed = [e.id for e in envelopes if e.id in confirmed]
        if self._refused and not result.error:
            result.error = f"the broker refused {len(self._refused)} event(s) (basic.nack)"
        return result

    def _send(self, batch: list[Envelope]) -> None:
        body, headers, properties = task_message(batch)
        first = batch[0]
        # published under the trace that committed the first event; the others
        # of the message are linked
        links = [tracing.link_to(e.traceparent) for e in batch[1:]]
        with tracing.span_from_traceparent(
            f"publish {first.type}",
            first.traceparent,
            kind=SpanKind.PRODUCER,
            links=[link for link in links if link is not None],
            **{
                "messaging.system": "rabbitmq" if not self._redis else "redis",
                "messaging.destination.name": topology.exchange_name(),
                "messaging.batch.message_count": len(batch),
                "cleave.event_type": first.type,
                "cleave.event_id": first.id,
            },
        ):
            propagate.inject(headers)  # the worker's task span continues this one
            self._producer.publish(
                body,
                exchange=topology.exchange_name(),
                routing_key=first.type,
                headers=headers,
                serializer="json",
                delivery_mode=2,
                **properties,
            )

    def _await_confirms(self) -> None:
        deadline = time.monotonic() + confirm_timeout()
        while self._unconfirmed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{len(self._unconfirmed)} message(s) not confirmed in time")
            try:
                self._connection.drain_events(timeout=remaining)
            except TimeoutError:  # socket.timeout: nothing arrived yet
                continue


def connect_timeout() -> float:
    return float(getattr(settings, "CELERY_BROKER_CONNECTION_TIMEOUT", 3.0))


_publishers = threading.local()


def event_publisher() -> EventPublisher:
    """This thread's `EventPublisher` (a new one in a forked child: sockets are not shared)."""
    current = getattr(_publishers, "current", None)
    if current is None or current[0] != os.getpid():
        current = _publishers.current = (os.getpid(), EventPublisher())
    return current[1]


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
