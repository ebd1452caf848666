"""
Retries, dead letters and redrives on the in-process transport, and the
operator commands and admin pages that show and act on them.
"""

from __future__ import annotations

import json
import uuid
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction

from cleave.messaging import delivery as consumer
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent
from cleave.messaging.publish import publish
from cleave.messaging.transports import get_transport
from cleave.testing import flows

pytestmark = flows


@pytest.fixture
def quick_retries(settings):
    settings.CLEAVE_EVENT_RETRY_BASE = 0
    settings.CLEAVE_EVENT_MAX_ATTEMPTS = 3


def relay_once() -> str:
    out = StringIO()
    call_command("events", "relay", "--once", stdout=out)
    return out.getvalue()


def test_backoff_doubles_per_attempt_with_jitter_up_to_the_cap(settings):
    settings.CLEAVE_EVENT_RETRY_BASE = 1
    settings.CLEAVE_EVENT_RETRY_MAX = 10

    for attempt, full in [(1, 1), (2, 2), (3, 4), (4, 8), (5, 10), (9, 10)]:
        delays = [consumer.backoff(attempt) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays), attempt
        assert len({round(d, 6) for d in delays}) > 100, "jittered, not fixed"


def test_a_handler_that_fails_every_attempt_is_dead_lettered_with_its_error(
    probe_event, local_subscriber, quick_retries
):
    def broken(envelope: Envelope) -> None:
        raise ValueError(f"cannot handle {envelope.data['n']}")

    handler = local_subscriber(broken, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 4})
    relay_once()
    relay_once()
    relay_once()  # nothing left to attempt

    (letter,) = DeadLetter.objects.using("users").all()
    assert letter.event_id == uuid.UUID(envelope.id)
    assert letter.handler == f"{handler.__module__}.{handler.__qualname__}"
    assert (letter.context, letter.event_type, letter.source) == ("users", probe_event, "users")
    assert letter.reason == DeadLetter.Reason.HANDLER_FAILED
    assert letter.attempts == 3
    assert letter.error == "ValueError: cannot handle 4"
    assert "Traceback (most recent call last)" in letter.traceback
    assert "cannot handle 4" in letter.traceback
    assert letter.envelope["data"] == {"n": 4}
    assert letter.correlation_id == envelope.correlation_id
    delivery = Delivery.objects.using("users").get(event_id=envelope.id)
    assert (delivery.status, delivery.attempts) == (Delivery.Status.DEAD, 3)
    assert not InboxRecord.objects.using("users").filter(event_id=envelope.id).exists()


def test_a_handler_that_meets_an_outage_keeps_being_retried_past_its_attempts(
    probe_event, local_subscriber, quick_retries, settings
):
    from cleave.core.errors import ServiceUnavailable

    outage = {"on": True}

    def calls_another_context(envelope: Envelope) -> None:
        if outage["on"]:
            raise ServiceUnavailable("inventory", message="inventory: connection refused")

    local_subscriber(calls_another_context, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 5})
    for _ in range(5):  # past CLEAVE_EVENT_MAX_ATTEMPTS (3)
        relay_once()

    assert not DeadLetter.objects.using("users").exists()
    delivery = Delivery.objects.using("users").get(event_id=envelope.id)
    assert delivery.status == Delivery.Status.RETRYING
    assert delivery.attempts >= 4

    outage["on"] = False
    relay_once()
    assert InboxRecord.objects.using("users").filter(event_id=envelope.id).count() == 1

    # an event older than the window is dead-lettered like any failure
    settings.CLEAVE_EVENT_UNAVAILABLE_WINDOW = 0
    outage["on"] = True
    with transaction.atomic(using="users"):
        late = publish(probe_event, {"n": 6})
    for _ in range(4):
        relay_once()
    assert DeadLetter.objects.using("users").get().event_id == uuid.UUID(late.id)


def test_a_payload_that_breaks_the_schema_is_dead_lettered_at_once_and_others_still_flow(
    probe_event, local_subscriber, quick_retries
):
    seen: list[int] = []
    local_subscriber(lambda envelope: seen.append(envelope.data["n"]), probe_event)
    # as an older publisher would have written it, bypassing today's validation
    with transaction.atomic(using="users"):
        row = OutboxEvent.objects.using("users").create(
            type=probe_event, source="users", data={"n": "many"}
        )
    get_transport().committed("users", [row.id])
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 2})

    (letter,) = DeadLetter.objects.using("users").all()
    assert letter.reason == DeadLetter.Reason.INVALID_PAYLOAD
    assert letter.attempts == 1
    assert "'many' is not of type 'integer'" in letter.error
    assert seen == [2]
    relay_once()
    assert DeadLetter.objects.using("users").get().attempts == 1, "not retried"


def test_redriving_after_the_fix_applies_the_event_once(
    probe_event, local_subscriber, quick_retries
):
    state = {"broken": True}
    applied: list[str] = []

    def flaky(envelope: Envelope) -> None:
        if state["broken"]:
            raise RuntimeError("bug")
        applied.append(envelope.id)

    local_subscriber(flaky, probe_event)
    with transaction.atomic(using="users"):
        envelope = publish(probe_event, {"n": 1})
    relay_once()
    relay_once()
    assert DeadLetter.objects.using("users").get().status == DeadLetter.Status.DEAD

    state["broken"] = False  # the fix is deployed
    out = StringIO()
    call_command("events", "redrive", "--context", "users", "--all", stdout=out)

    assert "redrove 1 dead letter(s) of users" in out.getvalue()
    assert applied == [envelope.id]
    letter = DeadLetter.objects.using("users").get()
    assert (letter.status, letter.redrive_count) == (DeadLetter.Status.RESOLVED, 1)
    assert letter.redriven_at is not None
    assert Delivery.objects.using("users").get().status == Delivery.Status.APPLIED
    again = StringIO()
    call_command("events", "redrive", "--context", "users", "--all", stdout=again)
    relay_once()
    assert "redrove 0 dead letter(s)" in again.getvalue()
    assert applied == [envelope.id]


def test_a_redrive_that_fails_again_starts_a_fresh_round_of_attempts(
    probe_event, local_subscriber, quick_retries
):
    def broken(envelope: Envelope) -> None:
        raise RuntimeError("still broken")

    local_subscriber(broken, probe_event)
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 1})
    relay_once()
    relay_once()
    letter = DeadLetter.objects.using("users").get()

    call_command(
        "events", "redrive", "--context", "users", "--id", str(letter.id), stdout=StringIO()
    )
    delivery = Delivery.objects.using("users").get()
    assert (delivery.status, delivery.attempts) == (Delivery.Status.RETRYING, 1)
    relay_once()
    relay_once()

    letter.refresh_from_db(using="users")
    assert (letter.status, letter.attempts, letter.redrive_count) == ("dead", 3, 1)


def test_redrive_names_its_context_and_dead_letters(probe_event):
    with pytest.raises(Exception, match="No local context"):
        call_command("events", "redrive", "--context", "warehouse", "--all", stdout=StringIO())
    err = StringIO()
    call_command(
        "events",
        "redrive",
        "--context",
        "users",
        "--id",
        str(uuid.uuid4()),
        stdout=StringIO(),
        stderr=err,
    )
    assert "not dead letters of users" in err.getvalue()


def test_a_retry_for_a_handler_that_no_longer_exists_is_dead_lettered(quick_retries):
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="user.created",
        version=1,
        source="users",
        timestamp="2025-01-01T00:00:00+00:00",
        data={},
    )
    Delivery.objects.using("analytics").create(
        event_id=envelope.id,
        handler="contexts.analytics.handlers.on_something_removed",
        context="analytics",
        event_type=envelope.type,
        source="users",
        envelope=envelope.to_dict(),
        attempts=1,
        next_attempt_at="2025-01-01T00:00:00+00:00",
    )

    relay_once()

    letter = DeadLetter.objects.using("analytics").get()
    assert letter.reason == DeadLetter.Reason.UNKNOWN_HANDLER


def test_the_events_command_shows_retrying_and_dead_deliveries(
    probe_event, local_subscriber, quick_retries
):
    def broken(envelope: Envelope) -> None:
        raise RuntimeError("down")

    local_subscriber(broken, probe_event)
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 1})
        publish(probe_event, {"n": 2})
    relay_once()
    relay_once()  # both dead now
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 3})  # retrying

    stats, dead, as_json = StringIO(), StringIO(), StringIO()
    call_command("events", "stats", stdout=stats)
    call_command("events", "dead", "--context", "users", "--verbose", stdout=dead)
    call_command("events", "stats", "--json", stdout=as_json)

    users = next(line for line in stats.getvalue().splitlines() if line.startswith("users"))
    assert users.split() == ["users", "0", "3", "1", "2"]
    lines = [line for line in dead.getvalue().splitlines() if probe_event in line]
    assert len(lines) == 2 and all("handler_failed" in line for line in lines)
    assert "RuntimeError: down" in dead.getvalue()
    assert json.loads(as_json.getvalue())["users"] == {
        "pending": 0,
        "published": 3,
        "retrying": 1,
        "dead": 2,
    }


def test_the_events_list_filters_by_type_glob_status_date_and_flow(probe_event, local_subscriber):
    local_subscriber(lambda envelope: None, probe_event)
    from cleave.core import flow

    with flow.flow(correlation_id="flow-a"), transaction.atomic(using="users"):
        first = publish(probe_event, {"n": 1})
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 2})

    def listing(*args):
        out = StringIO()
        call_command("events", "list", "--context", "users", *args, stdout=out)
        return out.getvalue().splitlines()

    assert len(listing("--type", "platform.*")) == 2
    assert listing("--type", "user.*") == []
    assert len(listing("--since", "2000-01-01")) == 2
    assert listing("--since", "2999-01-01") == []
    assert listing("--status", "pending") == []
    (line,) = listing("--correlation-id", "flow-a")
    assert line.endswith(first.id)
    (raw,) = listing("--correlation-id", "flow-a", "--json")
    assert json.loads(raw)["data"] == {"n": 1} and json.loads(raw)["status"] == "published"


def test_an_operator_redrives_a_dead_letter_and_retries_a_delivery_in_the_admin(
    client, probe_event, local_subscriber, quick_retries
):
    state = {"broken": True}
    applied: list[int] = []

    def flaky(envelope: Envelope) -> None:
        if state["broken"]:
            raise RuntimeError("bug")
        applied.append(envelope.data["n"])

    local_subscriber(flaky, probe_event)
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 1})
    relay_once()
    relay_once()
    with transaction.atomic(using="users"):
        publish(probe_event, {"n": 2})
    letter = DeadLetter.objects.using("users").get()
    retrying = Delivery.objects.using("users").get(status="retrying")
    operator = get_user_model().objects.create_superuser("op", "op@example.com", "pw")
    client.force_login(operator)

    listing = client.get("/admin/cleave/deadletter/?context=users&status__exact=dead")
    detail = client.get(f"/admin/cleave/deadletter/{letter.pk}/change/")
    state["broken"] = False
    redrive = client.post(
        "/admin/cleave/deadletter/?context=users",
        {"action": "redrive", "_selected_action": [str(letter.pk)]},
        follow=True,
    )
    retry = client.post(
        "/admin/cleave/delivery/?context=users",
        {"action": "retry_now", "_selected_action": [str(retrying.pk)]},
        follow=True,
    )

    assert listing.status_code == 200 and probe_event in listing.content.decode()
    assert detail.status_code == 200 and "RuntimeError: bug" in detail.content.decode()
    assert "Redrove 1 dead letter(s) of users" in redrive.content.decode()
    assert "Attempting 1 delivery(ies) of users now" in retry.content.decode()
    assert sorted(applied) == [1, 2]
    assert DeadLetter.objects.using("users").get().status == "resolved"
    for page in ("outboxevent", "delivery", "inboxrecord", "deadletter"):
        assert client.get(f"/admin/cleave/{page}/?context=analytics").status_code == 200
