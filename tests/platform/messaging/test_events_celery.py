"""
The Celery transport's pieces without a broker: the topology it declares,
the relay (with a recording stand-in for the broker) and what a worker does
with a message. The real brokers are in tests/integration/.
"""

from __future__ import annotations

import threading
import time
import uuid
from types import SimpleNamespace

import pytest
from celery import Celery
from celery.exceptions import Reject
from django.db import connections, transaction
from django.utils import timezone

from cleave.messaging import delivery
from cleave.messaging.broker import publisher, receiver, topology
from cleave.messaging.broker.transport import CeleryTransport
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent
from cleave.messaging.publish import publish
from cleave.messaging.transports import PublishError
from cleave.testing import flows, unit

# --- topology ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("glob", "pattern"),
    [
        ("order.confirmed", "order.confirmed"),
        ("order.*", "order.#"),
        ("*", "#"),
        ("*.created", "#.created"),
        ("user.cre?ted", "user.#"),
        ("*.*", "#"),
    ],
)
def test_a_subscription_glob_becomes_a_topic_pattern_matching_at_least_as_much(glob, pattern):
    assert topology.topic_pattern(glob) == pattern


@unit
def test_each_context_queue_is_durable_bound_to_its_subscriptions_and_dead_letters(settings):
    settings.CLEAVE_EVENT_QUEUE_PREFIX = "shop1."

    queue = topology.context_queue("analytics")
    dead = topology.dead_queue("analytics")

    assert queue.name == "shop1.analytics" and queue.durable
    assert {(b.exchange.name, b.routing_key) for b in queue.bindings} == {
        ("shop1.cleave.events", "user.created"),
        ("shop1.cleave.events", "user.verified"),
        ("shop1.cleave.events", "user.deleted"),
        ("shop1.cleave.events", "order.confirmed"),
        ("shop1.cleave.events", "order.cancelled"),
    }
    exchange = next(iter(queue.bindings)).exchange
    assert (exchange.type, exchange.durable, exchange.delivery_mode) == ("topic", True, 2)
    assert queue.queue_arguments == {
        "x-dead-letter-exchange": "shop1.cleave.dead",
        "x-dead-letter-routing-key": "shop1.analytics.dead",
    }
    assert (dead.name, dead.exchange.name, dead.routing_key) == (
        "shop1.analytics.dead",
        "shop1.cleave.dead",
        "shop1.analytics.dead",
    )
    assert topology.context_queue("catalog").bindings == set(), "catalog subscribes to nothing"
    assert topology.label_for_queue("shop1.orders") == "orders"
    assert topology.label_for_queue("shop1.celery") is None
    assert topology.label_for_queue("orders") is None


@unit
def test_install_adds_every_local_context_queue_to_a_celery_app(settings):
    settings.CLEAVE_EVENT_QUEUE_PREFIX = "shop2."
    app = Celery("probe", set_as_current=False, fixups=[])

    topology.install(app)

    names = set(app.amqp.queues)
    assert {f"shop2.{label}" for label in ("users", "orders", "analytics")} <= names
    orders = app.amqp.queues["shop2.orders"]
    assert {b.routing_key for b in orders.bindings} == {
        "user.created",
        "user.blocked",
        "user.password_changed",
        "user.deleted",
    }


# --- the relay, with a broker stand-in --------------------------------------------------


class RecordingBroker:
    """Stands in for the broker publisher's EventPublisher; records what was published."""

    def __init__(self, fail_after: int | None = None, delay: float = 0.0):
        self.published: list[str] = []
        self.batches: list[list[str]] = []
        self.fail_after = fail_after
        self.delay = delay
        self.lock = threading.Lock()
        self.gate = threading.Event()  # cleared: publishing waits until it is set
        self.gate.set()
        self.called = threading.Event()

    def install(self, monkeypatch) -> RecordingBroker:
        monkeypatch.setattr(publisher, "event_publisher", lambda: self)
        return self

    def publish(self, envelopes) -> publisher.Published:
        self.called.set()
        assert self.gate.wait(timeout=10), "the test never let the broker answer"
        time.sleep(self.delay)
        result = publisher.Published()
        with self.lock:
            self.batches.append([e.id for e in envelopes])
            for envelope in envelopes:
                if self.fail_after is not None and len(self.published) >= self.fail_after:
                    result.error = "ConnectionRefusedError: [Errno 111] Connection refused"
                    break
                self.published.append(envelope.id)
                result.confirmed.append(envelope.id)
        return result


@pytest.fixture
def celery_transport(settings):
    """The Celery transport, its relay thread flushed and its breaker closed after the test."""
    from cleave.messaging.transports import get_transport

    settings.CLEAVE_EVENT_TRANSPORT = "celery"
    transport = get_transport()
    transport._broken_until = 0.0
    yield transport
    transport.flush(timeout=10)
    transport._broken_until = 0.0


def _pending_rows(count: int, alias: str = "users") -> list[str]:
    ids = []
    with transaction.atomic(using=alias):
        for n in range(count):
            row = OutboxEvent.objects.using(alias).create(
                type="user.blocked",
                source=alias,
                data={"customer_id": str(uuid.uuid4()), "n": n},
                occurred_at=timezone.now() - timezone.timedelta(seconds=10),
            )
            ids.append(str(row.id))
    return ids


@flows
def test_the_relay_thread_publishes_right_after_commit_and_marks_rows_once_confirmed(
    celery_transport, monkeypatch
):
    recorder = RecordingBroker().install(monkeypatch)

    with transaction.atomic(using="users"):
        envelope = publish("user.blocked", {"customer_id": str(uuid.uuid4())})
        assert recorder.published == [], "nothing leaves before commit"
    assert celery_transport.flush(timeout=10)

    assert recorder.published == [envelope.id]
    row = OutboxEvent.objects.using("users").get(pk=envelope.id)
    assert (row.status, row.attempts, row.last_error) == ("published", 1, "")
    assert row.published_at is not None


@flows
def test_the_committing_request_does_not_wait_for_the_broker(celery_transport, monkeypatch):
    recorder = RecordingBroker().install(monkeypatch)
    recorder.gate.clear()  # the broker does not answer

    started = time.monotonic()
    with transaction.atomic(using="users"):
        envelope = publish("user.blocked", {"customer_id": str(uuid.uuid4())})

    assert time.monotonic() - started < 2, "the commit returned while the broker was silent"
    assert OutboxEvent.objects.using("users").get(pk=envelope.id).status == "pending"
    recorder.gate.set()
    assert celery_transport.flush(timeout=10)
    assert OutboxEvent.objects.using("users").get(pk=envelope.id).status == "published"


@flows
def test_commits_made_while_the_relay_thread_waits_for_the_broker_go_out_in_one_round(
    celery_transport, monkeypatch
):
    recorder = RecordingBroker().install(monkeypatch)
    recorder.gate.clear()
    ids = []
    for _ in range(6):
        with transaction.atomic(using="users"):
            ids.append(publish("user.blocked", {"customer_id": str(uuid.uuid4())}).id)
        assert recorder.called.wait(timeout=10), "the first commit woke the thread"

    recorder.gate.set()
    assert celery_transport.flush(timeout=10)

    # the first commit woke the thread; the five made while it waited went together
    assert recorder.batches == [ids[:1], ids[1:]]
    rows = OutboxEvent.objects.using("users").filter(pk__in=ids)
    assert set(rows.values_list("status", "attempts")) == {("published", 1)}


@flows
def test_rows_the_broker_did_not_confirm_stay_pending_for_the_sweep(celery_transport, monkeypatch):
    recorder = RecordingBroker(fail_after=1).install(monkeypatch)
    recorder.gate.clear()
    ids = []
    for _ in range(3):
        with transaction.atomic(using="users"):
            ids.append(publish("user.blocked", {"customer_id": str(uuid.uuid4())}).id)
        assert recorder.called.wait(timeout=10)
    recorder.gate.set()
    assert celery_transport.flush(timeout=10)

    statuses = dict(OutboxEvent.objects.using("users").values_list("id", "status"))
    assert [statuses[uuid.UUID(i)] for i in ids] == ["published", "pending", "pending"]
    failed = OutboxEvent.objects.using("users").get(pk=ids[2])
    assert failed.attempts == 1 and "ConnectionRefusedError" in failed.last_error
    assert recorder.batches == [ids[:1], ids[1:]]

    recorder.fail_after = None
    celery_transport._broken_until = 0.0
    from cleave.messaging.relay import sweep

    sweep(["users"], grace=timezone.timedelta(0))
    assert not OutboxEvent.objects.using("users").filter(pk__in=ids, status="pending").exists()
    assert recorder.published == ids


@flows
def test_rows_the_broker_refused_stay_pending_with_the_error_and_the_request_goes_on(
    celery_transport, monkeypatch, api
):
    recorder = RecordingBroker(fail_after=0).install(monkeypatch)

    response = api.post(
        "/api/users/",
        {"email": "ada@example.com", "password": "correct horse", "name": "Ada"},
        format="json",
    )
    assert celery_transport.flush(timeout=10)

    assert response.status_code == 201, response.content
    row = OutboxEvent.objects.using("users").get(type="user.created")
    # (the registration's user.verification_requested went the same way)
    assert (row.status, row.attempts) == ("pending", 1)
    assert "ConnectionRefusedError" in row.last_error
    recorder.fail_after = None
    from cleave.messaging.relay import sweep

    sweep(grace=timezone.timedelta(0))
    row.refresh_from_db(using="users")
    assert (row.status, row.attempts, row.last_error) == ("published", 2, "")
    assert str(row.id) in recorder.published
    assert not OutboxEvent.objects.using("users").filter(status="pending").exists()


@flows
def test_after_a_broker_failure_the_relay_thread_leaves_new_rows_to_the_sweep_for_a_while(
    celery_transport, monkeypatch
):
    recorder = RecordingBroker(fail_after=0).install(monkeypatch)
    with transaction.atomic(using="users"):
        first = publish("user.blocked", {"customer_id": str(uuid.uuid4())})
    assert celery_transport.flush(timeout=10)
    recorder.fail_after = None  # the broker is back, but the thread does not know yet

    with transaction.atomic(using="users"):
        second = publish("user.blocked", {"customer_id": str(uuid.uuid4())})
    assert celery_transport.flush(timeout=10)

    assert recorder.batches == [[first.id]], "no attempt while the breaker is open"
    second_row = OutboxEvent.objects.using("users").get(pk=second.id)
    assert (second_row.status, second_row.attempts) == ("pending", 0)


def test_a_forked_process_gets_a_relay_thread_of_its_own(celery_transport, monkeypatch):
    import os

    parent = celery_transport.outlet()
    assert celery_transport.outlet() is parent

    monkeypatch.setattr(os, "getpid", lambda: parent.pid + 1)  # as in a child after fork()

    child = celery_transport.outlet()
    assert child is not parent and child.pid == parent.pid + 1
    assert child.thread.is_alive() and child.thread is not parent.thread


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_relay_thread_that_died_is_started_again(celery_transport, monkeypatch):
    outlet = celery_transport.outlet()

    def die(alias, envelopes):
        raise SystemExit  # not an Exception: it ends the thread

    monkeypatch.setattr(outlet, "_publish", die)
    outlet.put("users", ["lost"])
    outlet.thread.join(timeout=5)
    assert not outlet.alive()

    replacement = celery_transport.outlet()
    assert replacement is not outlet and replacement.alive()


def test_a_process_that_exits_waits_a_while_for_its_relay_thread():
    from cleave.messaging.relay import Outlet

    published: list[str] = []

    def slow(alias, envelopes):
        time.sleep(0.3)
        published.extend(envelopes)

    outlet = Outlet(slow, exit_timeout=5)
    outlet.put("users", ["a", "b"])
    outlet._at_exit()  # what atexit runs

    assert published == ["a", "b"]


@flows
def test_a_broker_failing_mid_batch_keeps_only_the_unconfirmed_rows_pending(
    celery_transport, monkeypatch
):
    RecordingBroker(fail_after=2).install(monkeypatch)
    ids = _pending_rows(4)

    with pytest.raises(PublishError, match="published 2 of 4"):
        CeleryTransport().publish("users")

    statuses = dict(OutboxEvent.objects.using("users").values_list("id", "status"))
    assert [statuses[uuid.UUID(i)] for i in ids] == ["published", "published", "pending", "pending"]


@flows
def test_the_sweep_leaves_young_rows_to_the_process_that_committed_them(
    settings, celery_transport, monkeypatch
):
    settings.CLEAVE_EVENT_RELAY_GRACE = 5  # the old rows are 10 s old
    recorder = RecordingBroker().install(monkeypatch)
    with transaction.atomic(using="users"):
        young = OutboxEvent.objects.using("users").create(
            type="user.blocked", source="users", data={"customer_id": str(uuid.uuid4())}
        )
    old = _pending_rows(1)

    from cleave.messaging.relay import sweep

    sweep(["users"])

    assert recorder.published == old
    assert OutboxEvent.objects.using("users").get(pk=young.pk).status == "pending"


@pytest.mark.parametrize("alias", ["users", "orders"])
@flows
def test_relays_running_at_once_publish_each_row_exactly_once(settings, monkeypatch, alias):
    if connections[alias].vendor == "sqlite":
        pytest.skip("needs a database server: the test databases of SQLite are in memory")
    settings.CLEAVE_EVENT_TRANSPORT = "celery"
    settings.CLEAVE_EVENT_RELAY_BATCH = 10
    recorder = RecordingBroker(delay=0.002).install(monkeypatch)
    ids = _pending_rows(60, alias)
    errors: list[BaseException] = []

    def relay():
        try:
            transport = CeleryTransport()
            while transport.publish(alias):
                pass
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=relay) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert sorted(recorder.published) == sorted(ids), "every row once, none twice"
    assert not OutboxEvent.objects.using(alias).filter(status="pending").exists()


# --- the worker -----------------------------------------------------------------------


def _app(*queues: str):
    return SimpleNamespace(
        amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=dict.fromkeys(queues)))
    )


def _envelope(type_name: str = "user.created", **data) -> Envelope:
    customer = str(uuid.uuid4())
    return Envelope(
        id=str(uuid.uuid4()),
        type=type_name,
        version=1,
        source="users",
        timestamp=timezone.now().isoformat(),
        data=data
        or {
            "customer_id": customer,
            "email": f"{customer[:8]}@example.com",
            "name": "Ada",
            "created_at": "2025-01-01T12:00:00+00:00",
        },
    )


@flows
def test_a_worker_runs_the_subscribers_of_the_contexts_whose_queues_it_consumes():
    envelope = _envelope()

    results = receiver.handle(_app("orders", "celery"), envelope.to_dict())

    assert [(r.context, r.outcome) for r in results] == [("orders", "applied")]
    assert InboxRecord.objects.using("orders").filter(event_id=envelope.id).exists()
    assert not InboxRecord.objects.using("analytics").filter(event_id=envelope.id).exists()
    again = receiver.handle(_app("orders"), envelope.to_dict())
    assert [r.outcome for r in again] == ["duplicate"]


@flows
def test_a_failing_handler_gets_a_retry_sent_to_its_own_queue_only(
    settings, monkeypatch, local_subscriber
):
    settings.CLEAVE_EVENT_RETRY_BASE = 10
    sent: list[dict] = []
    monkeypatch.setattr(
        publisher,
        "send_to_context",
        lambda label, envelope, handlers=None, countdown=0: sent.append(
            {"label": label, "handlers": handlers, "countdown": countdown}
        ),
    )

    def broken(envelope):
        raise RuntimeError("boom")

    handler = local_subscriber(broken, "user.created")  # in the users context
    envelope = _envelope()

    results = receiver.handle(_app("users", "orders"), envelope.to_dict())

    assert sorted((r.context, r.outcome) for r in results) == [
        ("orders", "applied"),
        ("users", "retry"),
    ]
    name = f"{handler.__module__}.{handler.__qualname__}"
    (retry,) = sent
    assert (retry["label"], retry["handlers"]) == ("users", [name])
    assert 5 <= retry["countdown"] <= 10
    # another copy of the event (the orders queue's) does not attempt it before it is due
    copy = receiver.handle(_app("users", "orders"), envelope.to_dict())
    assert sorted(r.outcome for r in copy) == ["duplicate", "skipped"]
    assert Delivery.objects.using("users").get(event_id=envelope.id).attempts == 1


@flows
def test_a_batch_message_applies_each_event_and_dead_letters_only_its_poison():
    first, second = _envelope(), _envelope()
    poison = _envelope()
    poison.data.pop("email")  # breaks user.created's schema

    results = receiver.handle(
        _app("orders"),
        [first.to_dict(), "not an envelope", poison.to_dict(), second.to_dict()],
    )

    assert [r.outcome for r in results] == ["applied", "dead", "applied"]
    inbox = set(InboxRecord.objects.using("orders").values_list("event_id", flat=True))
    assert inbox == {uuid.UUID(first.id), uuid.UUID(second.id)}
    letters = DeadLetter.objects.using("orders").order_by("dead_at")
    assert [(letter.reason, str(letter.event_id)) for letter in letters][1:] == [
        ("invalid_payload", poison.id)
    ]
    assert letters[0].reason == "malformed"


@flows
def test_a_batch_delivered_again_applies_only_the_events_it_had_not():
    applied, new = _envelope(), _envelope()
    receiver.handle(_app("orders"), [applied.to_dict()])

    # the worker died before acknowledging a message holding it and another event
    results = receiver.handle(_app("orders"), [applied.to_dict(), new.to_dict()])

    assert [r.outcome for r in results] == ["duplicate", "applied"]
    assert InboxRecord.objects.using("orders").filter(event_id=applied.id).count() == 1


@flows
def test_a_failing_handler_in_a_batch_is_retried_for_its_event_alone(
    settings, monkeypatch, local_subscriber
):
    settings.CLEAVE_EVENT_RETRY_BASE = 10
    sent: list[tuple[str, str, list]] = []
    monkeypatch.setattr(
        publisher,
        "send_to_context",
        lambda label, envelope, handlers=None, countdown=0: sent.append(
            (label, envelope.id, handlers)
        ),
    )
    events = [_envelope() for _ in range(3)]
    broken_id = events[1].id

    def picky(envelope):
        if envelope.id == broken_id:
            raise RuntimeError("boom")

    handler = local_subscriber(picky, "user.created")  # in the users context
    name = f"{handler.__module__}.{handler.__qualname__}"

    results = receiver.handle(_app("users"), [e.to_dict() for e in events])

    assert [r.outcome for r in results] == ["applied", "retry", "applied"]
    assert sent == [("users", broken_id, [name])]
    # the same message again: the retry is not due, the others are in the inbox
    again = receiver.handle(_app("users"), [e.to_dict() for e in events])
    assert [r.outcome for r in again] == ["duplicate", "skipped", "duplicate"]
    assert Delivery.objects.using("users").get(event_id=broken_id).attempts == 1


@flows
def test_a_message_that_is_not_an_event_is_dead_lettered_as_malformed():
    receiver.handle(_app("analytics"), {"type": "user.created", "data": "nonsense"})
    receiver.handle(_app("analytics"), "not an envelope")

    letters = DeadLetter.objects.using("analytics").order_by("dead_at")
    assert [letter.reason for letter in letters] == ["malformed", "malformed"]
    assert "lacks" in letters[0].error


@flows
def test_a_worker_hands_a_message_back_when_it_cannot_record_anything(monkeypatch):
    monkeypatch.setattr(receiver, "REQUEUE_PAUSE", 0)

    def database_down(*args, **kwargs):
        raise ConnectionError("database is down")

    monkeypatch.setattr(delivery, "consume_many", database_down)

    with pytest.raises(Reject) as rejected:
        receiver.handle(_app("analytics"), _envelope().to_dict())

    assert rejected.value.requeue is True


@unit
def test_a_worker_refuses_a_queue_of_a_context_this_process_does_not_serve(settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.CLEAVE_ALL_CONTEXTS = [*settings.CLEAVE_ALL_CONTEXTS, "warehouse"]

    with pytest.raises(ImproperlyConfigured, match="warehouse"):
        receiver.check_queues(_app("orders", "warehouse"))
    receiver.check_queues(_app("orders", "celery"))
    with pytest.raises(Reject):
        receiver.handle(_app("orders"), _envelope().to_dict(), context="warehouse")


@unit
def test_beat_schedules_the_platform_jobs_on_every_contexts_queue(settings):
    from cleave.messaging.broker import topology
    from config.celery import app

    app.finalize()  # the schedule is built when the app is finalized
    for label in settings.CLEAVE_ALL_CONTEXTS:
        # in a split each context's workers sweep and recover their own aliases
        for job in ("cleave.events.relay_sweep", "cleave.sagas.resume"):
            entry = app.conf.beat_schedule[f"{job}@{label}"]
            assert entry["task"] == "cleave.periodic.run"
            assert entry["args"] == (job,)
            assert entry["options"]["queue"] == topology.queue_name(label)
            assert entry["options"]["expires"] == entry["schedule"]
    inventory = app.conf.beat_schedule["inventory.release_expired"]
    assert inventory["options"]["queue"] == topology.queue_name("inventory")
