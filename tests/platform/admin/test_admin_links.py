"""
An event in the outbox links to what it caused: its deliveries and dead
letters, which live in the subscribers' aliases; each of those, and each
inbox record, links back to the event, in the alias of the context that
published it (its `source`).
"""

from __future__ import annotations

import pytest

from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent
from cleave.testing import unit
from tests.support.links import follow, href

pytestmark = unit

EVENTS = "/admin/cleave/outboxevent/"
DELIVERIES = "/admin/cleave/delivery/"
DEAD_LETTERS = "/admin/cleave/deadletter/"
INBOX = "/admin/cleave/inboxrecord/"


def published(alias: str = "users") -> OutboxEvent:
    return OutboxEvent.objects.using(alias).create(
        type="test.happened", source=alias, data={}, status=OutboxEvent.Status.PUBLISHED
    )


def about(event: OutboxEvent) -> dict:
    """The columns a subscriber's row keeps of the event it is about."""
    return {
        "event_id": event.id,
        "event_type": event.type,
        "source": event.source,
        "envelope": event.envelope().to_dict(),
    }


def delivery_of(event: OutboxEvent, alias: str, handler: str) -> Delivery:
    return Delivery.objects.using(alias).create(
        **about(event), handler=handler, context=alias, status=Delivery.Status.APPLIED
    )


def dead_letter_of(event: OutboxEvent, alias: str, handler: str) -> DeadLetter:
    return DeadLetter.objects.using(alias).create(
        **about(event), handler=handler, context=alias, reason=DeadLetter.Reason.HANDLER_FAILED
    )


@pytest.fixture
def event() -> OutboxEvent:
    return published("users")


def test_the_event_page_links_to_the_deliveries_it_caused_in_every_context(admin_client, event):
    ours = [
        delivery_of(event, "notifications", "tests.notify"),
        delivery_of(event, "analytics", "tests.count"),
    ]
    other = delivery_of(published("users"), "notifications", "tests.other")

    page = admin_client.get(f"{EVENTS}{event.id}/change/", {"context": "users"})
    deliveries = follow(admin_client, page.content.decode(), "Deliveries of this event")

    assert all(delivery.handler in deliveries for delivery in ours)
    assert other.handler not in deliveries
    assert "2 deliveries" in deliveries


def test_the_event_page_links_to_the_dead_letters_it_caused(admin_client, event):
    dead = dead_letter_of(event, "analytics", "tests.count")
    other = dead_letter_of(published("users"), "analytics", "tests.other")

    page = admin_client.get(f"{EVENTS}{event.id}/change/").content.decode()
    letters = follow(admin_client, page, "Dead letters of this event")

    assert dead.handler in letters
    assert other.handler not in letters


@pytest.mark.parametrize(
    ("page", "row"),
    [
        (DELIVERIES, lambda event: delivery_of(event, "notifications", "tests.notify")),
        (DEAD_LETTERS, lambda event: dead_letter_of(event, "analytics", "tests.count")),
        (
            INBOX,
            lambda event: InboxRecord.objects.using("orders").create(
                event_id=event.id, handler="tests.h", event_type=event.type, source=event.source
            ),
        ),
    ],
)
def test_a_row_about_an_event_links_back_to_it_in_its_publishers_alias(
    admin_client, event, page, row
):
    made = row(event)
    alias = made._state.db

    detail = admin_client.get(f"{page}{made.pk}/change/", {"context": alias}).content.decode()
    listed = admin_client.get(page, {"context": alias}).content.decode()

    assert href(detail, str(event.id)).endswith("?context=users")
    assert f"test.happened {event.id}" in follow(admin_client, detail, str(event.id))
    assert f"test.happened {event.id}" in follow(admin_client, listed, str(event.id))


def test_a_dead_letter_that_names_no_publisher_finds_its_event_in_any_alias(admin_client):
    event = published("payments")
    envelope = Envelope(
        id=str(event.id), type=event.type, version=1, source="", timestamp="", data={}
    )
    letter = DeadLetter.objects.using("orders").create(
        event_id=event.id,
        handler="tests.h",
        context="orders",
        event_type=event.type,
        source="",  # a malformed message names no publisher
        envelope=envelope.to_dict(),
        reason=DeadLetter.Reason.MALFORMED,
    )

    page = admin_client.get(f"{DEAD_LETTERS}{letter.pk}/change/").content.decode()

    assert "?" not in href(page, str(event.id))
    assert f"test.happened {event.id}" in follow(admin_client, page, str(event.id))
