"""
The relay's `EventPublisher` against the real brokers: pipelined publisher
confirms on RabbitMQ, one pipeline on Redis, and the task messages it sends.

The publisher runs in the test process, on the `live` fixture's queue prefix
and broker (each test once per broker); the messages are read back from the
analytics queue with kombu, as a worker would receive them.
"""

from __future__ import annotations

import uuid

import pytest
from django.utils import timezone

from cleave.messaging.broker import publisher as broker
from cleave.messaging.broker import topology
from cleave.messaging.envelope import Envelope

pytestmark = [pytest.mark.services]


@pytest.fixture
def publisher(live, settings, monkeypatch):
    """An EventPublisher of this process, on the live system's broker and names."""
    settings.CLEAVE_EVENT_QUEUE_PREFIX = live.prefix
    settings.CLEAVE_EVENT_MESSAGE_EVENTS = 50
    app = broker.celery_app()
    monkeypatch.setitem(app.conf, "broker_url", live.broker_url)
    monkeypatch.setitem(app.conf, "broker_write_url", live.broker_url)
    broker.forget_topology()
    publisher = broker.EventPublisher()
    yield publisher
    publisher.close()
    broker.forget_topology()


def _envelopes(type_name: str, count: int) -> list[Envelope]:
    return [
        Envelope(
            id=str(uuid.uuid4()),
            type=type_name,
            version=1,
            source="users",
            timestamp=timezone.now().isoformat(),
            data={"n": n},
        )
        for n in range(count)
    ]


def _messages(live) -> list[list[dict]]:
    """The analytics queue's messages, each as the list of envelopes it carries."""
    from kombu import Connection, Queue

    found = []
    with Connection(live.broker_url) as conn:
        queue = Queue(f"{live.prefix}analytics", no_declare=True)(conn.channel())
        while (message := queue.get(no_ack=True)) is not None:
            assert message.headers["task"] == topology.TASK_NAME
            args, kwargs, _embed = message.decode()
            assert kwargs == {}
            found.append(args[0] if isinstance(args[0], list) else [args[0]])
    return found


def test_a_batch_is_confirmed_and_travels_in_messages_of_consecutive_events_of_one_type(
    live, publisher
):
    batch = [
        *_envelopes("user.created", 120),
        *_envelopes("order.confirmed", 1),
        *_envelopes("user.created", 5),
    ]

    result = publisher.publish(batch)

    assert result.error == ""
    assert result.confirmed == [e.id for e in batch]
    messages = _messages(live)
    assert [len(m) for m in messages] == [50, 50, 20, 1, 5]
    assert [e["id"] for m in messages for e in m] == [e.id for e in batch], "in publish order"
    assert messages[3][0]["type"] == "order.confirmed"


def test_the_publisher_reuses_its_connection_and_replaces_a_broken_one(live, publisher):
    first = publisher.publish(_envelopes("user.created", 3))
    connection = publisher._connection
    second = publisher.publish(_envelopes("user.created", 2))
    assert publisher._connection is connection, "one connection for every round"

    # the connection dies between two rounds (a broker restart, a network cut)
    connection.transport.close_connection(connection.connection)
    third = publisher.publish(_envelopes("user.created", 4))

    assert (len(first.confirmed), len(second.confirmed), len(third.confirmed)) == (3, 2, 4)
    assert third.error == ""
    assert publisher._connection is not connection
    assert sum(len(m) for m in _messages(live)) == 9
