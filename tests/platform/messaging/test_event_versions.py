"""
Versions of an event type that coexist through a rolling upgrade: a consumer
validates the version an envelope names, takes the copy of the version it
reads, or upcasts to it; a publisher downcasts to the versions it keeps.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from django.db import transaction
from django.utils import timezone

from cleave.core.declarations import MONEY, EventType, InvalidEventPayload, obj
from cleave.messaging import delivery, inbox, subscriptions, types, versions
from cleave.messaging.broker import publisher
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, InboxRecord
from cleave.messaging.publish import publish
from cleave.testing import unit

NAME = "thing.priced"
V1 = obj({"total": MONEY, "currency": {"type": "string"}})
V2 = obj({"amount": obj({"value": MONEY, "currency": {"type": "string"}})})


def v2_to_v1(data: dict) -> dict:
    return {"total": data["amount"]["value"], "currency": data["amount"]["currency"]}


def v1_to_v2(data: dict) -> dict:
    return {"amount": {"value": data["total"], "currency": data["currency"]}}


@pytest.fixture
def priced(monkeypatch) -> Iterator[EventType]:
    """`thing.priced` at v2 (users publishes it), its v1 schema in the lock."""
    event_type = types.register(
        EventType(NAME, schema=V2, version=2, downcasters={1: v2_to_v1}), context="users"
    )
    lock = {NAME: {"owner": "users", "versions": {"1": V1, "2": V2}, "consumers": {}}}
    monkeypatch.setattr(types, "event_lock", lambda: lock)
    yield event_type
    types._types.pop(NAME, None)


@pytest.fixture
def handlers() -> Iterator[list[subscriptions.Subscription]]:
    """Subscriptions made by the test, forgotten after it."""
    made: list[subscriptions.Subscription] = []
    yield made
    subscriptions._subscriptions[:] = [s for s in subscriptions._subscriptions if s not in made]


def _reader(handlers, seen: list[Envelope], **declared) -> subscriptions.Subscription:
    def handler(envelope: Envelope) -> None:
        seen.append(envelope)

    handler.__module__ = "contexts.users.handlers"
    handler.__qualname__ = f"reads_{uuid.uuid4().hex[:8]}"
    event = declared.pop("event", None) or types.get(NAME)
    subscriptions.subscriber(event, **declared)(handler)
    [sub] = [s for s in subscriptions.all_subscriptions() if s.func is handler]
    handlers.append(sub)
    return sub


def _envelope(version: int, data: dict, downcasts: dict | None = None) -> Envelope:
    return Envelope(
        id=str(uuid.uuid4()),
        type=NAME,
        version=version,
        source="users",
        timestamp=timezone.now().isoformat(),
        data=data,
        downcasts=downcasts,
    )


PRICE_V1 = {"total": "9.90", "currency": "EUR"}
PRICE_V2 = {"amount": {"value": "9.90", "currency": "EUR"}}


@unit
def test_a_payload_is_validated_against_the_version_its_envelope_names(priced, handlers):
    seen: list[Envelope] = []
    sub = _reader(handlers, seen, version=1)

    # a v1 payload is judged by v1's schema (from the lock), not by v2's, the current one
    assert inbox.apply(sub, _envelope(1, PRICE_V1)) == "applied"
    # and a v2-shaped payload in an envelope that says v1 breaks v1's schema
    with pytest.raises(InvalidEventPayload, match=r"thing\.priced v1"):
        inbox.apply(sub, _envelope(1, PRICE_V2))

    assert [envelope.data for envelope in seen] == [PRICE_V1]


@unit
def test_a_consumer_that_declares_an_upcaster_sees_its_own_version_only(priced, handlers):
    seen: list[Envelope] = []
    sub = _reader(handlers, seen, version=2, upcasters={1: v1_to_v2})

    inbox.apply(sub, _envelope(1, PRICE_V1))  # an older publisher, or a replayed event
    inbox.apply(sub, _envelope(2, PRICE_V2))

    assert [(envelope.version, envelope.data) for envelope in seen] == [
        (2, PRICE_V2),
        (2, PRICE_V2),
    ]
    assert sub.accepts == (2, 1)


@unit
def test_a_consumer_still_on_the_old_version_takes_the_copy_its_publisher_downcast(
    priced, handlers
):
    seen: list[Envelope] = []
    sub = _reader(handlers, seen, version=1)
    event = _envelope(2, PRICE_V2, downcasts={"1": PRICE_V1})

    assert inbox.apply(sub, event) == "applied"
    # a second copy of the same event (another version of it) is the same event
    assert inbox.apply(sub, versions.shaped(sub, event)) == "duplicate"

    assert [(envelope.id, envelope.version, envelope.data) for envelope in seen] == [
        (event.id, 1, PRICE_V1)
    ]


@unit
def test_publishing_a_new_major_version_carries_the_older_one_its_contract_downcasts_to(
    priced,
):
    with transaction.atomic(using="users"):
        envelope = publish(priced, PRICE_V2)

    assert (envelope.version, envelope.data, envelope.downcasts) == (2, PRICE_V2, {"1": PRICE_V1})
    # a row the sweep publishes later gets its downcasts as it leaves for the broker
    bare = Envelope(**{**envelope.to_dict(), "downcasts": None})
    body, _headers, _properties = publisher.task_message([bare])
    [argument] = body[0]
    assert argument["downcasts"] == {"1": PRICE_V1}


@unit
def test_a_downcaster_that_breaks_the_old_schema_fails_the_publishing_transaction(monkeypatch):
    types.register(
        EventType(NAME, schema=V2, version=2, downcasters={1: lambda data: {"wrong": 1}}),
        context="users",
    )
    lock = {NAME: {"owner": "users", "versions": {"1": V1, "2": V2}, "consumers": {}}}
    monkeypatch.setattr(types, "event_lock", lambda: lock)
    try:
        with pytest.raises(InvalidEventPayload, match="v1"), transaction.atomic(using="users"):
            publish(NAME, PRICE_V2)
    finally:
        types._types.pop(NAME, None)


@unit
def test_an_event_no_version_of_which_the_consumer_can_read_is_dead_lettered_with_why(
    priced, handlers
):
    seen: list[Envelope] = []
    sub = _reader(handlers, seen, version=1)
    # a publisher that dropped v1 too early: no downcaster, and no copy in the message
    types.register(EventType(NAME, schema=V2, version=2), context="users")
    event = _envelope(2, PRICE_V2)

    result = delivery.consume(sub, event)

    assert result.outcome == delivery.Outcome.DEAD
    letter = DeadLetter.objects.using("users").get(event_id=event.id)
    assert letter.reason == "invalid_payload"
    assert "reads v1; the message carries v2" in letter.error
    assert letter.envelope["version"] == 2  # kept as it came, to be redriven once upgraded
    assert not seen
    assert not InboxRecord.objects.using("users").filter(event_id=event.id).exists()


@unit
def test_the_publishers_own_process_downcasts_for_a_local_consumer_of_the_old_version(
    priced, handlers
):
    seen: list[Envelope] = []
    sub = _reader(handlers, seen, version=1)

    # in-process and on replay, the envelope comes from the outbox row: v2 only
    inbox.apply(sub, _envelope(2, PRICE_V2))

    assert [(envelope.version, envelope.data) for envelope in seen] == [(1, PRICE_V1)]


@unit
def test_a_subscription_names_a_version_its_type_has(priced):
    def handler(envelope: Envelope) -> None: ...

    with pytest.raises(ValueError, match="version 3"):
        subscriptions.subscriber(priced, version=3)(handler)
    with pytest.raises(ValueError, match="upcasters"):
        subscriptions.subscriber(priced, version=1, upcasters={1: v1_to_v2})
    with pytest.raises(TypeError, match="one event type"):
        subscriptions.subscriber(priced, "user.created", version=1)
    with pytest.raises(ValueError, match="downcaster"):
        EventType(NAME, schema=V2, version=2, downcasters={2: v2_to_v1})
