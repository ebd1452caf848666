"""
The Celery transport against real brokers (RabbitMQ and Redis), with the web
server, workers, relay and publisher as real processes that the tests kill.

Every test runs once per broker. "Exactly once in effect" is read from the
probe handler's counter (tests/support/probe.py): one per event, whatever
was redelivered.
"""

from __future__ import annotations

import time

import pytest

from tests.support.live import wait_until

pytestmark = [pytest.mark.services]


def test_an_event_reaches_each_subscribing_context_once(live):
    live.start_worker()
    publisher = live.start_publisher()

    ids = publisher.ask("publish ok 1 20")

    wait_until(lambda: live.probe_counts() == dict.fromkeys(range(1, 21), 1), what="20 probes")
    for event_id in ids:
        assert live.outbox_status(event_id) == "published"
        assert live.inbox("analytics", event_id) == 1
        assert live.inbox("orders", event_id) == 0, "orders does not subscribe to probes"
    assert live.queue_depth("analytics") == 0


def test_each_context_queue_gets_only_the_types_it_subscribes_to(live):
    from kombu import Connection, Exchange, Queue

    out = live.manage("events", "topology").stdout
    assert f"queue {live.prefix}analytics ← order.cancelled, order.confirmed, user.created" in out
    events = Exchange(f"{live.prefix}cleave.events", "topic", durable=True)

    with Connection(live.broker_url) as conn:
        producer = conn.Producer()
        for routing_key in ("user.created", "order.confirmed", "product.created"):
            producer.publish(
                {"probe": routing_key}, exchange=events, routing_key=routing_key, declare=[events]
            )
        depths = {
            label: live.queue_depth(label)
            for label in ("orders", "notifications", "analytics", "catalog")
        }
        assert depths == {"orders": 1, "notifications": 2, "analytics": 2, "catalog": 0}
        if live.broker_url.startswith("amqp"):
            # a message the consumer rejects without requeue goes to the context's dead-letter queue
            queue = Queue(f"{live.prefix}orders", no_declare=True)
            message = queue(conn.channel()).get(no_ack=False)
            message.reject(requeue=False)
            wait_until(
                lambda: live.queue_depth("orders.dead") == 1, what="the dead-lettered message"
            )


def test_a_relay_killed_between_commit_and_publish_loses_nothing(live):
    live.start_worker()
    publisher = live.start_publisher()

    publisher.send("hang-after-commit 7")
    (event_id,) = publisher.expect("committed").split(",")
    assert live.outbox_status(event_id) == "pending"
    publisher.kill()
    time.sleep(1)
    assert live.probe_count(7) == 0, "nothing left the outbox"

    live.start_relay()  # the relay after the crash

    wait_until(lambda: live.probe_count(7) == 1, what="the event after the restart")
    wait_until(lambda: live.outbox_status(event_id) == "published", what="the row marked")
    time.sleep(1)
    assert live.probe_count(7) == 1
    assert live.inbox("analytics", event_id) == 1


def test_a_short_lived_process_publishes_what_it_committed_before_it_exits(live):
    live.start_worker()  # no relay process: nothing would sweep a row left pending

    out = live.manage(
        "shell",
        "-c",
        "import tests.support.publisher as p; p._setup(); print(p._publish_one(21, 'ok'))",
    ).stdout
    event_id = out.strip().splitlines()[-1]

    assert live.outbox_status(event_id) == "published", "flushed by the exiting process"
    wait_until(lambda: live.probe_count(21) == 1, what="the event of the exited process")


def test_a_worker_side_relay_loop_also_recovers_what_a_crash_left_pending(live):
    publisher = live.start_publisher()
    publisher.send("hang-after-commit 17")
    (event_id,) = publisher.expect("committed").split(",")
    publisher.kill()

    # no relay process: the worker runs the sweep in a thread (the beat-less deployment)
    live.start_worker(env={"CLEAVE_EVENT_RELAY_IN_WORKER": "1"})

    wait_until(lambda: live.probe_count(17) == 1, what="the event swept by the worker")
    assert live.outbox_status(event_id) == "published"


def test_a_relay_killed_after_the_broker_confirmed_publishes_again_without_a_second_effect(live):
    live.start_worker()
    publisher = live.start_publisher()

    publisher.send("hang-after-publish 8")
    event_id = publisher.expect("published")
    wait_until(lambda: live.probe_count(8) == 1, what="the first copy applied")
    publisher.kill()
    assert live.outbox_status(event_id) == "pending", "killed before marking it published"

    live.start_relay()

    wait_until(lambda: live.outbox_status(event_id) == "published", what="the row published again")
    wait_until(lambda: live.queue_depth("analytics") == 0, what="the second copy consumed")
    time.sleep(0.5)
    assert live.probe_count(8) == 1, "the inbox absorbed the second copy"
    assert live.inbox("analytics", event_id) == 1


def test_a_worker_killed_mid_handler_gets_the_message_again_and_applies_it_once(live):
    worker = live.start_worker("w1")
    publisher = live.start_publisher()

    (event_id,) = publisher.ask("publish slow 9 1")
    wait_until(lambda: live.starts(9) == 1, what="the handler to start")
    worker.kill()
    assert live.probe_count(9) == 0, "the handler's transaction died with the worker"

    live.start_worker("w2")

    wait_until(lambda: live.probe_count(9) == 1, timeout=30, what="the redelivered event")
    assert live.starts(9) == 2, "the broker redelivered the unacknowledged message"
    assert live.inbox("analytics", event_id) == 1


def test_a_failing_handler_is_retried_then_dead_lettered_and_a_redrive_applies_it_once(live):
    live.flag("broken")
    live.start_worker()
    publisher = live.start_publisher()

    (event_id,) = publisher.ask("publish flaky 10 1")

    (letter,) = wait_until(live.dead_letters, what="a dead letter")
    assert letter["reason"] == "handler_failed"
    assert letter["attempts"] == 3  # CLEAVE_EVENT_MAX_ATTEMPTS in the live system
    assert letter["handler"] == "contexts.analytics.handlers.probe_ticked"
    assert "RuntimeError: probe 10 is broken" in letter["error"]
    assert "Traceback" in letter["traceback"]
    assert live.probe_count(10) == 0

    live.flag("broken", on=False)  # the fix is deployed
    out = live.manage("events", "redrive", "--context", "analytics", "--all").stdout
    assert "redrove 1 dead letter(s)" in out

    wait_until(lambda: live.probe_count(10) == 1, what="the redriven event")
    wait_until(lambda: live.dead_letters()[0]["status"] == "resolved", what="resolved")
    again = live.manage("events", "redrive", "--context", "analytics", "--all").stdout
    assert "redrove 0 dead letter(s)" in again
    time.sleep(0.5)
    assert live.probe_count(10) == 1
    assert live.inbox("analytics", event_id) == 1


def test_a_poison_payload_is_dead_lettered_at_once_and_the_consumer_keeps_going(live):
    live.start_worker()
    publisher = live.start_publisher()

    (poison_id,) = publisher.ask("invalid 11")
    (letter,) = wait_until(live.dead_letters, what="the poison message dead-lettered")
    (good_id,) = publisher.ask("publish ok 12 1")

    assert letter["reason"] == "invalid_payload"
    assert letter["attempts"] == 1, "a payload that breaks the schema is not retried"
    assert "0 is less than the minimum of 1" in letter["error"]
    assert letter["event_id"].replace("-", "") == poison_id.replace("-", "")
    wait_until(lambda: live.probe_count(12) == 1, what="the next event")
    assert live.probe_count(0) == 0

    live.flag("schema-fixed")  # a consumer that accepts the old payload is deployed
    live.manage("events", "redrive", "--context", "analytics", "--id", letter["id"])

    wait_until(lambda: live.probe_count(0) == 1, what="the redriven poison message")
    assert live.inbox("analytics", poison_id) == 1
    assert live.inbox("analytics", good_id) == 1
