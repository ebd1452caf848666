"""The event bus: outbox in the business transaction, registry, inbox, retries and relay."""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connections, transaction
from django.utils import timezone

from cleave.core import declarations
from cleave.core.declarations import InvalidEventPayload
from cleave.messaging import inbox, subscriptions
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import Delivery, InboxRecord, OutboxEvent
from cleave.messaging.publish import publish
from cleave.messaging.types import UnknownEventType
from cleave.observability import tracing
from cleave.runtime import state
from cleave.testing import flows, published, unit
from contexts.users import commands
from contexts.users.models import Customer
from tests.support.platform import user_created_data


class Boom(Exception):
    """Raised by tests to roll a transaction back."""


def register(email: str = "ada@example.com") -> Customer:
    return commands.customer_register(email=email, password="correct horse", name="Ada")


@flows
def test_an_event_published_in_a_rolled_back_transaction_leaves_no_trace(local_subscriber):
    seen: list[Envelope] = []
    local_subscriber(seen.append)

    with pytest.raises(Boom), transaction.atomic(using="users"):
        register()
        raise Boom

    assert not Customer.objects.using("users").exists()
    assert not OutboxEvent.objects.using("users").exists()
    assert seen == []


@flows
def test_a_committed_event_is_stored_and_delivered_to_its_subscribers(local_subscriber):
    seen: list[Envelope] = []
    local_subscriber(seen.append)

    with transaction.atomic(using="users"):
        customer = register()
        assert seen == [], "nothing may be delivered before commit"

    row = OutboxEvent.objects.using("users").get(type="user.created")
    assert row.source == "users"
    assert row.version == 1
    assert row.data["customer_id"] == str(customer.id)
    assert [envelope.id for envelope in seen] == [str(row.id)]
    assert seen[0].data["email"] == "ada@example.com"
    assert InboxRecord.objects.using("users").filter(event_id=row.id).exists()


@flows
def test_an_event_whose_subscribers_all_succeed_is_marked_published(probe_event, local_subscriber):
    seen: list[int] = []
    local_subscriber(lambda envelope: seen.append(envelope.data["n"]), probe_event)

    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 1})

    row = OutboxEvent.objects.using("users").get(pk=envelope.id)
    assert row.status == OutboxEvent.Status.PUBLISHED
    assert row.published_at is not None
    assert row.attempts == 1
    assert seen == [1]


@flows
def test_the_envelope_carries_the_flow_ids_of_the_request(api, local_subscriber):
    seen: list[Envelope] = []
    local_subscriber(seen.append)

    response = api.post(
        "/api/users/",
        {"email": "ada@example.com", "password": "correct horse", "name": "Ada"},
        format="json",
        headers={"X-Request-ID": "req-42", "X-Correlation-ID": "checkout-7"},
    )

    assert response.status_code == 201, response.content
    (envelope,) = published("users", "user.created")
    assert envelope.correlation_id == "checkout-7"
    assert envelope.causation_id == "req-42"
    assert seen[0].correlation_id == "checkout-7"


@flows
def test_an_event_carries_its_trace_and_its_handler_continues_it(probe_event, local_subscriber):
    from opentelemetry import trace

    seen: list[int] = []
    local_subscriber(
        lambda envelope: seen.append(trace.get_current_span().get_span_context().trace_id),
        probe_event,
    )

    with (
        tracing.tracer().start_as_current_span("checkout") as span,
        transaction.atomic(using="users"),
    ):
        envelope = publish(probe_event, {"n": 1})
    trace_id = span.get_span_context().trace_id

    assert trace_id != 0
    assert envelope.traceparent.split("-")[1] == format(trace_id, "032x")
    assert seen == [trace_id]


@unit
def test_publishing_an_unregistered_type_is_refused():
    with pytest.raises(UnknownEventType), transaction.atomic(using="users"):
        publish("user.teleported", {"customer_id": str(uuid.uuid4())})

    assert not OutboxEvent.objects.using("users").exists()


@pytest.mark.parametrize(
    "data",
    [
        {key: value for key, value in user_created_data().items() if key != "email"},
        user_created_data(customer_id="not-a-uuid"),
        user_created_data(name=42),
        user_created_data(unexpected="field"),
    ],
    ids=["missing-field", "bad-uuid", "wrong-type", "extra-field"],
)
@unit
def test_publishing_an_invalid_payload_is_refused_and_writes_nothing(data):
    with pytest.raises(InvalidEventPayload) as raised, transaction.atomic(using="users"):
        publish("user.created", data)

    assert raised.value.type_name == "user.created"
    assert not OutboxEvent.objects.using("users").exists()


TRICKY = declarations.obj(
    {
        "id": declarations.UUID,
        "at": declarations.DATETIME,
        "amount": declarations.MONEY,
        "count": declarations.POSITIVE_INT,
        "kind": {"type": "string", "enum": ["a", "b"]},
        "lines": {
            "type": "array",
            "items": declarations.obj({"sku": declarations.STRING}),
            "minItems": 1,
        },
    },
    required=["id"],
)


@pytest.mark.parametrize(
    "data",
    [
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e"},
        {"id": "0b6f2c1e8a7d4c3b9f1e2d5a6b7c8d9e"},  # a UUID without its dashes
        {"id": "not-a-uuid"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "at": "2026-12-01T10:00:00Z"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "at": "2026-12-01"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "amount": "9.90"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "amount": "9.90\n"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "amount": 9.9},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "count": 1},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "count": 1.0},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "count": True},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "count": 0},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "kind": "c"},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "lines": []},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "lines": [{"sku": "A", "x": 1}]},
        {"id": "0b6f2c1e-8a7d-4c3b-9f1e-2d5a6b7c8d9e", "extra": 1},
        {},
        [],
        None,
    ],
)
@unit
def test_the_compiled_check_accepts_exactly_what_the_schema_validator_accepts(data):
    from jsonschema import Draft202012Validator

    event_type = declarations.EventType("test.tricky", schema=TRICKY)
    reference = Draft202012Validator(TRICKY, format_checker=Draft202012Validator.FORMAT_CHECKER)

    try:
        event_type.validate(data)
        accepted = True
    except InvalidEventPayload:
        accepted = False

    assert accepted == reference.is_valid(data)


def _envelope(data: dict | None = None) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type="user.created",
        version=1,
        source="users",
        timestamp=timezone.now().isoformat(),
        data=data or user_created_data(),
        correlation_id="flow-1",
    )


@unit
def test_the_inbox_applies_an_event_once_however_often_it_arrives():
    effects: list[str] = []

    def handler(envelope: Envelope) -> None:
        effects.append(envelope.id)

    handler.__module__ = "contexts.users.handlers"
    sub = subscriptions.Subscription("user.created", handler)
    envelope = _envelope()

    first = inbox.apply(sub, envelope)
    second = inbox.apply(sub, envelope)

    assert (first, second) == ("applied", "duplicate")
    assert effects == [envelope.id]
    assert InboxRecord.objects.using("users").filter(event_id=envelope.id).count() == 1


@unit
def test_a_handler_that_fails_rolls_back_its_effect_and_its_inbox_row():
    calls: list[str] = []

    def handler(envelope: Envelope) -> None:
        calls.append(envelope.id)
        Customer.objects.using("users").create(email="half@example.com", name="Half", password="x")
        if len(calls) == 1:
            raise Boom("first delivery fails after writing")

    handler.__module__ = "contexts.users.handlers"
    sub = subscriptions.Subscription("user.created", handler)
    envelope = _envelope()

    with pytest.raises(Boom):
        inbox.apply(sub, envelope)

    assert not Customer.objects.using("users").exists()
    assert not InboxRecord.objects.using("users").exists()
    assert inbox.apply(sub, envelope) == "applied"
    assert Customer.objects.using("users").count() == 1


@unit
def test_a_consumed_payload_is_validated_against_the_publishers_schema():
    def handler(envelope: Envelope) -> None:
        raise AssertionError("an invalid payload must not reach the handler")

    handler.__module__ = "contexts.users.handlers"
    sub = subscriptions.Subscription("user.created", handler)

    with pytest.raises(InvalidEventPayload):
        inbox.apply(sub, _envelope({"customer_id": "nope"}))

    assert not InboxRecord.objects.using("users").exists()


@flows
def test_a_failing_handler_is_retried_by_the_relay_until_it_succeeds(
    api, probe_event, local_subscriber, settings
):
    settings.CLEAVE_EVENT_RETRY_BASE = 0  # every retry is due at once
    state = {"broken": True}
    delivered: list[int] = []

    def flaky(envelope: Envelope) -> None:
        if state["broken"]:
            raise RuntimeError("mail server down")
        delivered.append(envelope.data["n"])

    handler = local_subscriber(flaky, probe_event)
    # The vehicle: a real registration request whose user.created subscriber fails.
    local_subscriber(flaky, "user.created")

    response = api.post(
        "/api/users/",
        {"email": "ada@example.com", "password": "correct horse", "name": "Ada"},
        format="json",
    )
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 7})

    # The publisher's request succeeds: delivery failures never break it.
    assert response.status_code == 201, response.content
    assert Customer.objects.using("users").filter(email="ada@example.com").exists()
    # Each event was handed to its handlers; the failures wait for a retry.
    assert not OutboxEvent.objects.using("users").filter(status="pending").exists()
    delivery = Delivery.objects.using("users").get(event_id=envelope.id)
    assert (delivery.status, delivery.attempts) == ("retrying", 1)
    assert delivery.handler == f"{handler.__module__}.{handler.__qualname__}"
    assert "RuntimeError: mail server down" in delivery.last_error
    assert delivery.next_attempt_at is not None
    assert delivered == []

    call_command("events", "relay", "--once", stdout=StringIO())
    delivery.refresh_from_db(using="users")
    assert (delivery.status, delivery.attempts) == ("retrying", 2)

    state["broken"] = False
    out = StringIO()
    call_command("events", "relay", "--once", stdout=out)

    delivery.refresh_from_db(using="users")
    assert (delivery.status, delivery.attempts) == ("applied", 3)
    assert 7 in delivered
    assert "retried" in out.getvalue()

    delivered.clear()
    call_command("events", "relay", "--once", stdout=StringIO())
    assert 7 not in delivered, "an applied event is not delivered again"


@flows
def test_a_retry_waits_for_its_backoff(probe_event, local_subscriber, settings):
    settings.CLEAVE_EVENT_RETRY_BASE = 60
    calls: list[str] = []

    def failing(envelope: Envelope) -> None:
        calls.append(envelope.id)
        raise RuntimeError("still down")

    local_subscriber(failing, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 1})

    call_command("events", "relay", "--once", stdout=StringIO())

    delivery = Delivery.objects.using("users").get(event_id=envelope.id)
    assert calls == [envelope.id], "not due for another 30 to 60 seconds"
    assert 30 <= (delivery.next_attempt_at - delivery.updated_at).total_seconds() <= 60


@flows
def test_the_relay_retries_only_the_handler_that_failed(probe_event, local_subscriber, settings):
    settings.CLEAVE_EVENT_RETRY_BASE = 0
    healthy: list[str] = []
    state = {"broken": True}

    def flaky(envelope: Envelope) -> None:
        if state["broken"]:
            raise RuntimeError("not yet")

    local_subscriber(lambda envelope: healthy.append(envelope.id), probe_event)
    local_subscriber(flaky, probe_event)

    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 1})
    state["broken"] = False
    call_command("events", "relay", "--once", stdout=StringIO())

    assert healthy == [envelope.id]
    row = OutboxEvent.objects.using("users").get(pk=envelope.id)
    assert row.status == OutboxEvent.Status.PUBLISHED
    assert InboxRecord.objects.using("users").filter(event_id=envelope.id).count() == 2


@flows
def test_the_relay_delivers_an_event_a_crash_left_pending(probe_event, local_subscriber):
    seen: list[int] = []
    local_subscriber(lambda envelope: seen.append(envelope.data["n"]), probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 5})
    # as if the process had died between the commit and the hand-over
    OutboxEvent.objects.using("users").filter(pk=envelope.id).update(status="pending")
    seen.clear()

    call_command("events", "relay", "--once", stdout=StringIO())

    assert seen == [], "the inbox knows the handler applied it already"
    assert OutboxEvent.objects.using("users").get(pk=envelope.id).status == "published"
    InboxRecord.objects.using("users").filter(event_id=envelope.id).delete()
    OutboxEvent.objects.using("users").filter(pk=envelope.id).update(status="pending")

    call_command("events", "relay", "--once", stdout=StringIO())

    assert seen == [5]


@flows
def test_the_events_command_lists_and_counts_the_outbox(probe_event, local_subscriber):
    local_subscriber(lambda envelope: None, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 3})

    listing, stats = StringIO(), StringIO()
    call_command("events", "list", "--context", "users", "--type", probe_event, stdout=listing)
    call_command("events", "stats", stdout=stats)

    (line,) = listing.getvalue().splitlines()
    assert line.split()[2:] == ["users", probe_event, "published", envelope.id]
    header, *rows = stats.getvalue().splitlines()
    assert header.split() == ["context", "pending", "published", "retrying", "dead"]
    users_row = next(row for row in rows if row.startswith("users"))
    assert users_row.split() == ["users", "0", "1", "0", "0"]
    with pytest.raises(CommandError, match="No local context"):
        call_command("events", "list", "--context", "warehouse", stdout=StringIO())


def outbox_rows(alias: str, **by_status: int) -> None:
    """Outbox rows of `alias`, so many per status (`published=5, pending=1`)."""
    OutboxEvent.objects.using(alias).bulk_create(
        OutboxEvent(type="user.created", source=alias, data={}, status=status)
        for status, n in by_status.items()
        for _ in range(n)
    )


@unit
def test_events_stats_estimates_a_published_log_too_long_to_count(monkeypatch):
    # given more published events than `events stats` counts, and one pending
    monkeypatch.setattr(state, "EXACT_UP_TO", 3)
    monkeypatch.setattr(
        state, "estimated_rows", lambda model, alias: 1000 if alias == "users" else None
    )
    outbox_rows("users", published=5, pending=1)

    stats, as_json = StringIO(), StringIO()
    call_command("events", "stats", stdout=stats)
    call_command("events", "stats", "--json", stdout=as_json)

    # then "published" is the table's estimated rows less the pending one, marked as such
    lines = stats.getvalue().splitlines()
    users = next(line for line in lines if line.startswith("users"))
    assert users.split() == ["users", "1", "~999", "0", "0"]
    assert lines[-1] == "~ estimated from the database's statistics (more than 3 rows)"
    assert json.loads(as_json.getvalue())["users"] == {
        "pending": 1,
        "published": 999,
        "retrying": 0,
        "dead": 0,
        "estimated": ["published"],
    }


@unit
def test_events_stats_counts_every_published_event_where_the_database_has_no_estimate(
    monkeypatch,
):
    monkeypatch.setattr(state, "EXACT_UP_TO", 3)
    monkeypatch.setattr(state, "estimated_rows", lambda model, alias: None)
    outbox_rows("users", published=5)

    assert state.event_counts("users") == {"pending": 0, "published": 5, "retrying": 0, "dead": 0}


@flows
@pytest.mark.parametrize("alias", ["users", "orders"])  # PostgreSQL and MariaDB in CI's servers
def test_the_database_estimates_the_rows_of_the_outbox_after_analysing_it(alias):
    outbox_rows(alias, published=20)
    connection = connections[alias]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE cleave_outboxevent")
        elif connection.vendor == "mysql":
            cursor.execute("ANALYZE TABLE cleave_outboxevent")
            cursor.fetchall()

    estimate = state.estimated_rows(OutboxEvent, alias)

    assert estimate == (None if connection.vendor == "sqlite" else 20)


@flows
def test_the_periodic_relay_job_sends_due_retries_as_the_relay_command_does(
    probe_event, local_subscriber, settings
):
    # The embedded scheduler and Celery beat run this job, not `events relay`.
    from cleave.runtime import periodic

    settings.CLEAVE_EVENT_RETRY_BASE = 0
    state = {"broken": True}
    delivered: list[int] = []

    def flaky(envelope: Envelope) -> None:
        if state["broken"]:
            raise RuntimeError("mail server down")
        delivered.append(envelope.data["n"])

    local_subscriber(flaky, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 11})
    assert Delivery.objects.using("users").get(event_id=envelope.id).status == "retrying"

    state["broken"] = False
    periodic.get("cleave.events.relay_sweep").run()

    delivery = Delivery.objects.using("users").get(event_id=envelope.id)
    assert (delivery.status, delivery.attempts) == ("applied", 2)
    assert delivered == [11]
