"""
The admin's "needs attention" page and its JSON: empty says healthy; a dead
letter or a failed saga anywhere shows with a link that acts on it; an
operator sees only the kinds whose table they may view; the JSON answers
problem details to a caller who is not an operator, never the sign-in page.
`manage.py status` prints the same report.
"""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command

from cleave.sagas.models import SagaInstance
from cleave.testing import unit
from tests.support.platform import dead_letter, saga

pytestmark = unit


def failed_saga(alias: str) -> SagaInstance:
    return saga(alias, state=SagaInstance.State.FAILED, failure_reason="payment_error")


def operator(client, codenames: list[str]):
    user = get_user_model().objects.create_user(username="viewer", password="x" * 12, is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def test_an_empty_page_says_the_shop_is_healthy(admin_client):
    page = admin_client.get("/admin/attention/")

    assert page.status_code == 200
    body = page.content.decode()
    assert "All clear: nothing needs attention in any context." in body
    for label in ("users", "catalog", "inventory", "orders", "payments", "analytics"):
        assert f"<td>{label}</td>" in body
    assert admin_client.get("/admin/attention.json").json()["healthy"] is True


def test_the_index_leads_to_the_page(admin_client):
    assert 'href="/admin/attention/"' in admin_client.get("/admin/").content.decode()


def test_trouble_anywhere_shows_with_a_link_that_acts_on_it(admin_client):
    letter = dead_letter("analytics")
    saga = failed_saga("orders")

    body = admin_client.get("/admin/attention/").content.decode()

    assert "All clear" not in body
    assert "Dead letters not redriven (1)" in body
    assert "order.placed → analytics.handlers.count" in body
    assert "KeyError: &#x27;total&#x27;" in body
    letter_link = f"/admin/cleave/deadletter/{letter.id}/change/?context=analytics"
    saga_link = f"/admin/cleave/sagainstance/{saga.id}/change/?context=orders"
    assert f'href="{letter_link}"' in body
    assert f'href="{saga_link}"' in body
    assert body.index("Failed sagas (") < body.index("Dead letters not redriven (")  # urgent first
    # the links open the records, in their own alias
    assert str(letter.id) in admin_client.get(letter_link).content.decode()
    assert str(saga.id) in admin_client.get(saga_link).content.decode()


def test_the_json_is_the_same_report(admin_client):
    letter = dead_letter("analytics")

    answer = admin_client.get("/admin/attention.json")

    assert answer.status_code == 200
    report = answer.json()
    assert report["healthy"] is False
    (item,) = report["items"]
    assert item["kind"] == "dead_letter"
    assert item["id"] == str(letter.id)
    assert item["context"] == "analytics"
    assert item["link"] == f"/admin/cleave/deadletter/{letter.id}/change/?context=analytics"
    assert report["counts"]["dead_letter"] == 1
    assert report["contexts"]["analytics"]["dead_letters"] == 1


def test_an_operator_sees_only_the_kinds_of_the_tables_they_may_view(client):
    dead_letter("analytics")
    failed_saga("orders")
    operator(client, ["view_deadletter"])

    body = client.get("/admin/attention/").content.decode()
    report = client.get("/admin/attention.json").json()

    assert "Dead letters not redriven" in body
    assert "Failed sagas" not in body
    assert [item["kind"] for item in report["items"]] == ["dead_letter"]
    assert "saga_failed" not in report["counts"]


@pytest.mark.parametrize(("signed_in", "status"), [(False, 401), (True, 403)])
def test_the_json_answers_problem_details_to_whoever_is_not_an_operator(client, signed_in, status):
    if signed_in:
        customer = get_user_model().objects.create_user(username="c", password="x" * 12)
        client.force_login(customer)

    answer = client.get("/admin/attention.json")

    assert answer.status_code == status
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["status"] == status
    # the page itself sends a stranger to the sign-in page, as every admin page
    assert client.get("/admin/attention/").status_code == 302


def test_status_says_healthy_and_checks_clean():
    out = StringIO()

    call_command("status", "--check", stdout=out)

    assert "All clear: nothing needs attention in any context." in out.getvalue()


def test_status_lists_what_needs_attention_and_fails_its_check():
    letter = dead_letter("analytics")
    saga = failed_saga("orders")
    out = StringIO()

    call_command("status", stdout=out)
    text = out.getvalue()
    with pytest.raises(CommandError, match=r"2 item\(s\) need attention"):
        call_command("status", "--check", stdout=StringIO())

    assert "Failed sagas (compensation gave up) (1):" in text
    assert f"[orders] checkout {saga.id} (failed, payment_error)" in text
    assert "Dead letters not redriven (1):" in text
    assert f"/admin/cleave/deadletter/{letter.id}/change/?context=analytics" in text
    assert text.index("Failed sagas") < text.index("Dead letters")
    analytics = next(line for line in text.splitlines() if line.startswith("analytics "))
    assert analytics.split()[1:4] == ["0", "-", "1"]  # outbox, oldest, dead


def test_status_json_is_the_admins_json():
    dead_letter("analytics")
    out = StringIO()

    call_command("status", "--json", stdout=out)

    report = json.loads(out.getvalue())
    assert report["healthy"] is False
    assert [item["kind"] for item in report["items"]] == ["dead_letter"]
