"""
One rule for what an address is (contexts.users.emails): the probe registered
`bob@example.com` again as new customers by adding invisible or full-width
characters (their mail went to Bob's mailbox), and registered two addresses
with bidirectional controls that could never sign in.
"""

from __future__ import annotations

from importlib import import_module
from types import SimpleNamespace

import pytest
from django.apps import apps
from django.db import IntegrityError, transaction

from cleave.testing import unit
from contexts.users.emails import UnacceptableEmail, normalize_email
from contexts.users.models import Customer
from tests.contexts.users.factories import CustomerFactory

pytestmark = unit

LOOK_ALIKES = [
    "bob\u200b@example.com",  # zero-width space
    "bob@exam\u2060ple.com",  # word joiner
    "\ufeffbob@example.com",  # byte order mark
    "bob@exam\u00adple.com",  # soft hyphen
    "\uff42\uff4f\uff42@example.com",  # full-width letters
    "bob@\uff45xample.com",
    "BOB@Example.COM",
]
BIDI = ["bob@example.com\u202e", "\u2066bob\u2069@example.com", "bob\u200f@example.com"]


@pytest.mark.parametrize("given", LOOK_ALIKES, ids=repr)
def test_a_look_alike_of_an_address_is_that_address(given):
    assert normalize_email(given) == "bob@example.com"


@pytest.mark.parametrize("given", [*BIDI, "bob@example.com\x00", "bob\u2028@example.com"], ids=repr)
def test_control_and_bidirectional_characters_are_refused(given):
    with pytest.raises(UnacceptableEmail):
        normalize_email(given)


def register(api, email):
    body = {"email": email, "password": "correct horse", "name": "Bob"}
    return api.post("/api/users/", body, format="json")


@pytest.mark.parametrize("given", LOOK_ALIKES, ids=repr)
def test_a_look_alike_registers_no_new_customer(api, given):
    assert register(api, "bob@example.com").status_code == 201

    response = register(api, given)

    assert response.status_code == 409, response.content
    assert response.json()["type"].endswith("email-taken")
    assert Customer.objects.using("users").count() == 1


@pytest.mark.parametrize("given", LOOK_ALIKES, ids=repr)
def test_a_look_alike_signs_in_as_the_customer_it_looks_like(api, given):
    register(api, "bob@example.com")

    response = api.post(
        "/api/users/token", {"email": given, "password": "correct horse"}, format="json"
    )

    assert response.status_code == 200, response.content


@pytest.mark.parametrize("given", BIDI, ids=repr)
def test_bidirectional_controls_are_refused_alike_at_registration_and_sign_in(api, given):
    registered = register(api, given)
    signed_in = api.post(
        "/api/users/token", {"email": given, "password": "correct horse"}, format="json"
    )

    for response in (registered, signed_in):
        assert response.status_code == 400, response.content
        assert response["Content-Type"] == "application/problem+json"
    assert registered.json()["errors"]["email"] == signed_in.json()["errors"]["email"]
    assert not Customer.objects.using("users").exists()


def test_an_operator_cannot_store_an_address_with_bidirectional_controls(admin_client):
    customer = CustomerFactory(email="bob@example.com")

    response = admin_client.post(
        f"/admin/users/customer/{customer.id}/change/",
        {"email": "bob@example.com\u202e", "name": "Bob"},
    )

    assert response.status_code == 200  # the form again, with the error
    customer.refresh_from_db(using="users")
    assert customer.email == "bob@example.com"


def test_the_data_migration_normalises_existing_rows_and_leaves_what_it_cannot(capsys):
    bob = CustomerFactory(email="bob@example.com")
    carol = CustomerFactory(email="Carol@Example.COM")
    dave = CustomerFactory(email="\uff44\uff41\uff56\uff45@example.com")
    try:
        with transaction.atomic(using="users"):
            twin = CustomerFactory(email="bob\u200b@example.com")
    except IntegrityError:  # MariaDB's collation ignores the zero-width space already
        twin = None
    hidden = CustomerFactory(email="eve\u202e@example.com")
    migration = import_module("contexts.users.migrations.0003_normalize_emails")

    schema_editor = SimpleNamespace(connection=SimpleNamespace(alias="users"))

    migration.normalize_existing(apps, schema_editor)

    emails = dict(Customer.objects.using("users").values_list("id", "email"))
    assert emails[bob.id] == "bob@example.com"
    assert emails[carol.id] == "carol@example.com"
    assert emails[dave.id] == "dave@example.com"
    assert emails[hidden.id] == "eve\u202e@example.com"  # can never be normalised: left
    printed = capsys.readouterr().out
    assert str(hidden.id) in printed
    if twin is not None:
        assert emails[twin.id] == "bob\u200b@example.com"  # a look-alike of Bob's: left
        assert str(twin.id) in printed
