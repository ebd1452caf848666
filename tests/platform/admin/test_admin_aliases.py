"""
The platform's admin lists (saga instances, outbox, inbox, deliveries, dead
letters) live once per context alias: unfiltered, a list opens on the first
local context that holds rows, and the context filter still chooses another.
"""

from __future__ import annotations

import re
import uuid

import pytest

from cleave.messaging.models import DeadLetter
from cleave.sagas.models import SagaInstance
from cleave.testing import unit

pytestmark = unit

SAGAS = "/admin/cleave/sagainstance/"
DEAD_LETTERS = "/admin/cleave/deadletter/"


def saga_in(alias: str) -> SagaInstance:
    return SagaInstance.objects.using(alias).create(
        saga_type="checkout", context=alias, correlation_id=uuid.uuid4().hex
    )


def dead_letter_in(alias: str) -> DeadLetter:
    return DeadLetter.objects.using(alias).create(
        event_id=uuid.uuid4(),
        handler="tests.handler",
        context=alias,
        event_type="test.happened",
        envelope={},
        reason=DeadLetter.Reason.choices[0][0],
    )


def test_the_saga_list_opens_on_the_context_that_holds_the_sagas(admin_client):
    saga = saga_in("orders")

    page = admin_client.get(SAGAS)

    body = page.content.decode()
    assert page.status_code == 200
    assert str(saga.id) in body
    assert "1 saga instance" in body


def test_the_context_filter_still_chooses_an_alias(admin_client):
    saga = saga_in("orders")

    other = admin_client.get(SAGAS, {"context": "users"})
    chosen = admin_client.get(SAGAS, {"context": "orders"})

    assert other.status_code == 200
    assert str(saga.id) not in other.content.decode()
    assert str(saga.id) in chosen.content.decode()


def test_the_filter_marks_the_context_the_list_opened_on(admin_client):
    saga_in("payments")

    page = admin_client.get(SAGAS)

    # Django's filter marks the chosen choice `class="selected"`
    selected = re.findall(r'class="selected">\s*<a href="\?context=(\w+)"', page.content.decode())
    assert selected == ["payments"]


def test_the_dead_letter_list_opens_on_the_context_that_holds_them(admin_client):
    dead = dead_letter_in("analytics")

    page = admin_client.get(DEAD_LETTERS)

    assert page.status_code == 200
    assert str(dead.id) in page.content.decode()


@pytest.mark.parametrize(
    "url",
    [
        SAGAS,
        DEAD_LETTERS,
        "/admin/cleave/outboxevent/",
        "/admin/cleave/inboxrecord/",
        "/admin/cleave/delivery/",
    ],
)
def test_an_empty_list_opens_on_the_first_context(admin_client, url):
    page = admin_client.get(url)

    assert page.status_code == 200
