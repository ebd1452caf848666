"""
The saga admin: instances with their step timeline, filters and operator
actions; each with its subject (what its definition says it is about), linked
and searched.
"""

from __future__ import annotations

import re
import uuid

import pytest
from django.db import transaction

from cleave.sagas import SagaDefinition, Step, StepFailed, start
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import flows
from tests.contexts.users.factories import CustomerFactory
from tests.support.links import follow

pytestmark = [flows, pytest.mark.usefixtures("no_saga_backoff")]

CHANGELIST = "/admin/cleave/sagainstance/"


@pytest.fixture
def definition(saga_definitions):
    calls = {"release": 0}

    def release(ctx):
        calls["release"] += 1
        if calls["release"] <= 2:
            raise ConnectionError("inventory is down")
        return {"released": True}

    def charge(ctx):
        raise StepFailed("payment_declined", "declined")

    return saga_definitions(
        SagaDefinition(
            name=f"test.admin-{uuid.uuid4().hex[:6]}",
            context="users",
            steps=(Step("reserve", lambda ctx: {}, release), Step("charge", charge)),
            compensation_retries=1,
        )
    )


def started(definition) -> SagaInstance:
    with transaction.atomic(using="users"):
        saga = start(definition.name, data={})
    return SagaInstance.objects.using("users").get(pk=saga.id)


def test_the_changelist_filters_by_state_and_type(admin_client, definition):
    saga = started(definition)

    listed = admin_client.get(CHANGELIST, {"context": "users", "state": "failed"})
    other = admin_client.get(CHANGELIST, {"context": "users", "state": "completed"})
    typed = admin_client.get(CHANGELIST, {"context": "users", "saga_type": definition.name})

    assert listed.status_code == 200
    assert str(saga.id) in listed.content.decode()
    assert str(saga.id) not in other.content.decode()
    assert str(saga.id) in typed.content.decode()


def test_the_detail_page_shows_the_step_timeline(admin_client, definition):
    saga = started(definition)

    page = admin_client.get(f"{CHANGELIST}{saga.id}/change/", {"context": "users"})

    body = page.content.decode()
    assert page.status_code == 200
    assert "step timeline" in body.lower()
    assert "inventory is down" in body
    assert f"saga:{saga.id}:reserve" in body


def test_the_retry_action_runs_a_failed_sagas_compensation_again(admin_client, definition):
    saga = started(definition)
    assert saga.state == "failed"

    response = admin_client.post(
        f"{CHANGELIST}?context=users",
        {"action": "retry_sagas", "_selected_action": [str(saga.id)]},
        follow=True,
    )

    assert response.status_code == 200
    saga.refresh_from_db(using="users")
    assert saga.state == "compensated"
    assert "now compensated" in response.content.decode()


def test_the_compensate_action_undoes_a_completed_saga(admin_client, saga_definitions):
    undone = []
    definition = saga_definitions(
        SagaDefinition(
            name=f"test.admin-{uuid.uuid4().hex[:6]}",
            context="users",
            steps=(Step("reserve", lambda ctx: {}, lambda ctx: undone.append(1)),),
            cancel_reason="operator",
        )
    )
    saga = started(definition)
    assert saga.state == "completed"

    admin_client.post(
        f"{CHANGELIST}?context=users",
        {"action": "compensate_sagas", "_selected_action": [str(saga.id)]},
    )

    saga.refresh_from_db(using="users")
    assert (saga.state, saga.failure_reason) == ("compensated", "operator")
    assert undone == [1]


def test_staff_without_superuser_may_look_but_not_act(client, django_user_model, definition):
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    from django.contrib.auth.models import Permission

    staff.user_permissions.add(Permission.objects.get(codename="view_sagainstance"))
    client.force_login(staff)
    saga = started(definition)

    assert client.get(CHANGELIST, {"context": "users"}).status_code == 200
    client.post(
        f"{CHANGELIST}?context=users",
        {"action": "retry_sagas", "_selected_action": [str(saga.id)]},
    )
    saga.refresh_from_db(using="users")
    assert saga.state == "failed"


# --- the saga's page: timeline, buttons, subject ------------------------------------------------


def test_the_timeline_rounds_durations_to_the_millisecond(admin_client, definition):
    saga = started(definition)
    SagaStepLog.objects.using("users").filter(saga_id=saga.id).update(
        duration_ms=2.1870000000000003
    )

    body = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()

    assert "2.187" not in body
    assert '<td class="number">2 ms</td>' in body


def test_a_step_done_by_the_starting_transaction_shows_a_note_not_an_error(
    admin_client, saga_definitions
):
    definition = saga_definitions(
        SagaDefinition(
            name=f"test.admin-{uuid.uuid4().hex[:6]}",
            context="users",
            steps=(Step("place", lambda ctx: {}), Step("charge", lambda ctx: {"paid": True})),
        )
    )
    with transaction.atomic(using="users"):
        saga = start(definition.name, data={}, completed_steps=1)

    body = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()

    timeline = body[body.index('id="saga-timeline"') :]
    assert re.search(r'class="note">.*done by the transaction that started the saga', timeline)
    assert not re.search(r'class="error">.*done by the transaction', timeline, re.S)
    assert "&quot;paid&quot;: true" in timeline  # the result, as JSON


def test_the_saga_page_offers_the_actions_that_apply(admin_client, definition):
    saga = started(definition)  # failed

    body = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()

    assert ">Retry the compensation</button>" in body
    assert ">Compensate</button>" in body
    assert ">Resume</button>" not in body  # a failed saga is final


def test_retrying_from_the_saga_page_compensates_it(admin_client, definition):
    saga = started(definition)

    response = admin_client.post(
        f"{CHANGELIST}{saga.id}/do/retry_sagas/?context=users", follow=True
    )

    saga.refresh_from_db(using="users")
    assert saga.state == "compensated"
    assert response.redirect_chain[0][0] == f"{CHANGELIST}{saga.id}/change/?context=users"
    assert "now compensated" in response.content.decode()


def test_a_view_only_operator_sees_no_button_and_cannot_post_one(
    client, django_user_model, definition
):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_sagainstance"))
    client.force_login(staff)
    saga = started(definition)

    page = client.get(f"{CHANGELIST}{saga.id}/change/")
    posted = client.post(f"{CHANGELIST}{saga.id}/do/retry_sagas/?context=users")

    assert page.status_code == 200
    assert 'class="cleave-action"' not in page.content.decode()
    assert posted.status_code == 403
    saga.refresh_from_db(using="users")
    assert saga.state == "failed"


# --- the saga's subject: declared by its definition, shown, linked and searched ----------------


@pytest.fixture
def about_a_customer(saga_definitions):
    """A saga whose subject is a customer: its definition says where the id is and what it is."""
    return saga_definitions(
        SagaDefinition(
            name=f"test.admin-{uuid.uuid4().hex[:6]}",
            context="users",
            steps=(Step("greet", lambda ctx: {}),),
            subject_key="customer_id",
            subject_model="users.customer",
        )
    )


def about(definition, customer) -> SagaInstance:
    with transaction.atomic(using="users"):
        return start(definition.name, data={"customer_id": str(customer.id)})


def test_the_saga_page_and_list_link_to_its_subject(admin_client, about_a_customer):
    customer = CustomerFactory(email="ada@example.com")
    saga = about(about_a_customer, customer)

    page = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()
    listed = admin_client.get(CHANGELIST).content.decode()

    assert "ada@example.com" in follow(admin_client, page, f"customer {customer.id}")
    assert "ada@example.com" in follow(admin_client, listed, f"customer {customer.id}")


def test_the_saga_list_finds_a_saga_by_its_subject(admin_client, about_a_customer):
    ada, bob = CustomerFactory(), CustomerFactory()
    hers, his = about(about_a_customer, ada), about(about_a_customer, bob)

    found = admin_client.get(CHANGELIST, {"q": str(ada.id)}).content.decode()
    by_part = admin_client.get(CHANGELIST, {"q": str(ada.id).split("-")[-1].upper()})

    assert str(hers.id) in found and str(his.id) not in found
    assert str(hers.id) in by_part.content.decode()
    assert str(his.id) not in by_part.content.decode()


def test_a_saga_without_a_declared_subject_shows_none(admin_client, definition):
    saga = started(definition)

    page = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()

    subject = re.search(r'field-subject">.*?class="readonly">(.*?)</div>', page, re.S)
    assert subject and subject.group(1).strip() == "-"


def test_the_saga_page_links_the_other_records_its_data_names(admin_client, saga_definitions):
    definition = saga_definitions(
        SagaDefinition(
            name=f"test.admin-{uuid.uuid4().hex[:6]}",
            context="users",
            steps=(Step("greet", lambda ctx: {}),),
            records=(("customer_id", "users.customer"), ("payment_id", "payments.payment")),
        )
    )
    customer = CustomerFactory(email="grace@example.com")
    with transaction.atomic(using="users"):
        saga = start(definition.name, data={"customer_id": str(customer.id)})  # no payment yet

    page = admin_client.get(f"{CHANGELIST}{saga.id}/change/").content.decode()

    assert "grace@example.com" in follow(admin_client, page, f"customer {customer.id}")
    records = re.search(r'field-records">.*?class="readonly">(.*?)</div>', page, re.S).group(1)
    assert "payment" not in records  # named, but not in the data yet
