"""
The platform's admin lists (saga instances, outbox, inbox, deliveries, dead
letters) live once per context alias: a list opens on every context's rows,
newest first, the context filter narrows it to one, and every row's link and
checkbox carry the alias it lives in.
"""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, connections
from django.utils import timezone

from cleave.admin import tables
from cleave.admin.paging import CappedPaginator
from cleave.admin.tables import SagaInstanceAdmin
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery, OutboxEvent
from cleave.sagas.models import SagaInstance
from cleave.testing import unit

pytestmark = unit

SAGAS = "/admin/cleave/sagainstance/"
DEAD_LETTERS = "/admin/cleave/deadletter/"
DELIVERIES = "/admin/cleave/delivery/"


def saga_in(alias: str, *, ago: int = 0, **values) -> SagaInstance:
    return SagaInstance.objects.using(alias).create(
        **{
            "saga_type": "checkout",
            "context": alias,
            "correlation_id": uuid.uuid4().hex,
            "created_at": timezone.now() - timedelta(minutes=ago),
            **values,
        }
    )


def dead_letter_in(alias: str) -> DeadLetter:
    envelope = Envelope(
        id=str(uuid.uuid4()),
        type="test.happened",
        version=1,
        source="users",
        timestamp=timezone.now().isoformat(),
        data={},
    )
    return DeadLetter.objects.using(alias).create(
        event_id=envelope.id,
        handler="tests.handler",
        context=alias,
        event_type=envelope.type,
        envelope=envelope.to_dict(),
        reason=DeadLetter.Reason.HANDLER_FAILED,
    )


def delivery_in(alias: str, pk: int, handler: str) -> Delivery:
    return Delivery.objects.using(alias).create(
        id=pk,
        event_id=uuid.uuid4(),
        handler=handler,
        context=alias,
        event_type="test.happened",
        source="users",
        envelope={},
        next_attempt_at=timezone.now() + timedelta(hours=1),
    )


def listed_ids(body: str, ids: list[str]) -> list[str]:
    """The given ids in the order the page shows them."""
    return sorted((i for i in ids if i in body), key=body.index)


def test_the_saga_list_shows_the_sagas_of_every_context(admin_client):
    ours = saga_in("orders")
    theirs = saga_in("users")

    page = admin_client.get(SAGAS)

    body = page.content.decode()
    assert page.status_code == 200
    assert str(ours.id) in body and str(theirs.id) in body
    assert "2 saga instances" in body


def test_rows_of_several_contexts_are_merged_newest_first(admin_client):
    oldest = saga_in("orders", ago=30)
    middle = saga_in("users", ago=20)
    newest = saga_in("orders", ago=10)

    body = admin_client.get(SAGAS).content.decode()

    ids = [str(newest.id), str(middle.id), str(oldest.id)]
    assert listed_ids(body, ids) == ids


def test_the_merged_list_pages(admin_client, monkeypatch):
    monkeypatch.setattr(SagaInstanceAdmin, "list_per_page", 2)
    sagas = [
        saga_in("orders", ago=10),
        saga_in("users", ago=20),
        saga_in("orders", ago=30),
        saga_in("payments", ago=40),
    ]
    ids = [str(saga.id) for saga in sagas]

    first = admin_client.get(SAGAS).content.decode()
    second = admin_client.get(SAGAS, {"p": 2}).content.decode()

    assert listed_ids(first, ids) == ids[:2]
    assert listed_ids(second, ids) == ids[2:]
    assert "4 saga instances" in first


def test_a_long_list_is_counted_only_up_to_the_cap(admin_client, monkeypatch):
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    monkeypatch.setattr(SagaInstanceAdmin, "list_per_page", 2)
    sagas = [saga_in(alias, ago=n) for n, alias in enumerate(["orders", "users"] * 3)]
    ids = [str(saga.id) for saga in sagas]

    first = admin_client.get(SAGAS).content.decode()
    last = admin_client.get(SAGAS, {"p": 2}).content.decode()
    narrowed = admin_client.get(SAGAS, {"context": "users"}).content.decode()

    # given 6 sagas and a cap of 3: "more than 3", and the pages up to it
    assert "more than 3 saga instances" in first
    assert listed_ids(first, ids) == ids[:2]
    assert listed_ids(last, ids) == ids[2:3]  # the first 3 rows, and no more
    assert admin_client.get(SAGAS, {"p": 3}).status_code == 302  # past the cap: ?e=1
    # below the cap the count is exact
    assert "3 saga instances" in narrowed and "more than" not in narrowed


def test_the_context_filter_lists_every_context_and_narrows_the_list(admin_client):
    ours = saga_in("orders")
    theirs = saga_in("users")

    everything = admin_client.get(SAGAS).content.decode()
    narrowed = admin_client.get(SAGAS, {"context": "users"}).content.decode()

    offered = re.findall(r'<a href="\?context=(\w+)"', everything)
    assert offered == [
        "users",
        "catalog",
        "inventory",
        "orders",
        "payments",
        "notifications",
        "analytics",
    ]
    # nothing chosen: "All" is the selected choice
    assert re.search(r'class="selected">\s*<a href="\?"[^>]*>All</a>', everything)
    assert str(theirs.id) in narrowed and str(ours.id) not in narrowed
    assert re.search(r'class="selected">\s*<a href="\?context=users"[^>]*>users</a>', narrowed)


def test_an_unknown_context_is_refused_like_any_wrong_filter(admin_client):
    response = admin_client.get(SAGAS, {"context": "nowhere"})

    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


def test_filters_and_search_work_across_contexts(admin_client):
    failed = saga_in("orders", state=SagaInstance.State.FAILED)
    running = saga_in("users")
    other = saga_in("payments", saga_type="refund", state=SagaInstance.State.FAILED)

    by_state = admin_client.get(SAGAS, {"state__exact": "failed"}).content.decode()
    by_type = admin_client.get(SAGAS, {"saga_type": "refund"}).content.decode()
    searched = admin_client.get(SAGAS, {"q": running.correlation_id}).content.decode()

    assert str(failed.id) in by_state and str(other.id) in by_state
    assert str(running.id) not in by_state
    assert listed_ids(by_type, [str(failed.id), str(other.id)]) == [str(other.id)]
    assert listed_ids(searched, [str(s.id) for s in (failed, running, other)]) == [str(running.id)]


def test_a_filter_offers_the_values_of_every_context(admin_client):
    saga_in("orders", saga_type="checkout")
    saga_in("users", saga_type="erase")

    body = admin_client.get(SAGAS).content.decode()

    assert 'href="?saga_type=checkout"' in body
    assert 'href="?saga_type=erase"' in body


def test_a_row_links_to_its_page_in_its_own_context(admin_client):
    # deliveries number their rows per alias: id 7 names a row in both
    delivery_in("users", 7, "users.handler")
    delivery_in("analytics", 7, "analytics.handler")

    body = admin_client.get(DELIVERIES).content.decode()
    users = admin_client.get(f"{DELIVERIES}7/change/", {"context": "users"}).content.decode()
    analytics = admin_client.get(f"{DELIVERIES}7/change/", {"context": "analytics"})

    assert f"{DELIVERIES}7/change/?context=users" in body
    assert f"{DELIVERIES}7/change/?context=analytics" in body
    assert "users.handler" in users and "analytics.handler" not in users
    assert "analytics.handler" in analytics.content.decode()


def test_a_detail_page_is_found_from_a_plain_link(admin_client):
    saga = saga_in("payments")
    letter = dead_letter_in("analytics")

    saga_page = admin_client.get(f"{SAGAS}{saga.id}/change/")
    letter_page = admin_client.get(f"{DEAD_LETTERS}{letter.id}/change/")

    assert saga_page.status_code == 200 and str(saga.id) in saga_page.content.decode()
    assert "in payments" in saga_page.content.decode()
    assert letter_page.status_code == 200 and "tests.handler" in letter_page.content.decode()


class FakeTransport:
    name = "fake"

    def __init__(self) -> None:
        self.redriven: list = []
        self.committed_ids: list = []

    def redrive(self, deliveries) -> int:
        self.redriven.extend(deliveries)
        return len(deliveries)

    def committed(self, alias, ids, envelopes=None) -> None:
        self.committed_ids.append((alias, list(ids)))


@pytest.fixture
def transport(monkeypatch) -> FakeTransport:
    fake = FakeTransport()
    monkeypatch.setattr(tables, "get_transport", lambda: fake)
    return fake


def test_an_action_acts_on_the_rows_checked_in_each_context(admin_client, transport):
    chosen = delivery_in("users", 7, "users.handler")
    other = delivery_in("analytics", 7, "analytics.handler")

    page = admin_client.get(DELIVERIES).content.decode()
    admin_client.post(
        DELIVERIES, {"action": "retry_now", "index": 0, "_selected_action": ["users:7"]}
    )

    assert 'value="users:7"' in page and 'value="analytics:7"' in page
    chosen = Delivery.objects.using("users").get(pk=7)
    other_now = Delivery.objects.using("analytics").get(pk=7)
    assert chosen.next_attempt_at <= timezone.now()
    assert other_now.next_attempt_at == other.next_attempt_at
    assert [(d._state.db, d.pk) for d in transport.redriven] == [("users", 7)]


def test_an_action_on_every_row_acts_in_every_context(admin_client, transport):
    letters = [dead_letter_in("users"), dead_letter_in("analytics")]

    admin_client.post(
        DEAD_LETTERS,
        {
            "action": "redrive",
            "index": 0,
            "select_across": 1,
            "_selected_action": [f"users:{letters[0].id}"],
        },
    )

    for letter in letters:
        letter.refresh_from_db(using=letter._state.db)
        assert letter.status == DeadLetter.Status.REDRIVEN
    assert len(transport.redriven) == 2


def test_a_record_page_offers_its_action_and_runs_it_from_a_plain_link(admin_client, transport):
    letter = dead_letter_in("analytics")

    page = admin_client.get(f"{DEAD_LETTERS}{letter.id}/change/").content.decode()
    action = f"{DEAD_LETTERS}{letter.id}/do/redrive/?context=analytics"
    response = admin_client.post(action)

    assert f'action="{action}"' in page and ">Redrive</button>" in page
    assert response.status_code == 302
    assert response["Location"] == f"{DEAD_LETTERS}{letter.id}/change/?context=analytics"
    letter.refresh_from_db(using="analytics")
    assert letter.status == DeadLetter.Status.REDRIVEN
    # redriven, it offers no second redrive
    again = admin_client.get(response["Location"]).content.decode()
    assert ">Redrive</button>" not in again


def test_an_outbox_event_page_redelivers_it(admin_client, transport):
    event = OutboxEvent.objects.using("orders").create(
        type="order.placed", source="orders", data={}, status=OutboxEvent.Status.PUBLISHED
    )

    admin_client.post(f"/admin/cleave/outboxevent/{event.id}/do/redeliver/?context=orders")

    event.refresh_from_db(using="orders")
    assert event.status == OutboxEvent.Status.PENDING
    assert transport.committed_ids == [("orders", [event.id])]


def test_an_unavailable_context_is_named_and_the_others_still_show(admin_client, monkeypatch):
    ours = saga_in("orders")

    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(connections["analytics"], "cursor", down)
    page = admin_client.get(SAGAS)

    body = page.content.decode()
    assert page.status_code == 200
    assert str(ours.id) in body
    assert "analytics is unavailable" in body and "connection refused" in body


@pytest.mark.parametrize(
    "url",
    [
        SAGAS,
        DEAD_LETTERS,
        "/admin/cleave/outboxevent/",
        "/admin/cleave/inboxrecord/",
        DELIVERIES,
    ],
)
def test_an_empty_list_opens(admin_client, url):
    page = admin_client.get(url)

    assert page.status_code == 200
