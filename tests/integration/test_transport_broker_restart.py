"""
A broker restart in the middle of a stream of events: nothing is lost and
nothing is applied twice.

RabbitMQ keeps its durable queues and the persistent messages it confirmed;
messages a worker held unacknowledged come back. Redis (run here without
persistence, as CI runs it) loses everything it held, bindings included: the
relay notices the new server (its run_id) and publishes again what the old one
accepted, and the inbox drops the copies already applied.
"""

from __future__ import annotations

import time

import pytest

from tests.support.live import broker_down, wait_until

pytestmark = [pytest.mark.services]

FIRST, COUNT = 100, 60


def test_every_event_of_a_stream_is_applied_once_across_a_broker_restart(live):
    kind = "redis" if live.broker_url.startswith("redis") else "rabbitmq"
    live.start_worker()
    live.start_relay()
    publisher = live.start_publisher()

    publisher.send(f"publish ok {FIRST} {COUNT} 0.05")  # about three seconds of events
    time.sleep(0.8)
    with broker_down(kind):
        time.sleep(1.5)  # events keep being committed while the broker is away
    ids = publisher.expect("ok", timeout=60).split(",")

    expected = dict.fromkeys(range(FIRST, FIRST + COUNT), 1)
    wait_until(
        lambda: {n: c for n, c in live.probe_counts().items() if n >= FIRST} == expected,
        timeout=90,
        every=0.5,
        what="every event applied once",
    )
    wait_until(
        lambda: all(live.outbox_status(i) == "published" for i in ids),
        timeout=30,
        what="every row published",
    )
    time.sleep(1)  # late duplicates, if any, would land now
    assert {n: c for n, c in live.probe_counts().items() if n >= FIRST} == expected
    assert all(live.inbox("analytics", i) == 1 for i in ids)
