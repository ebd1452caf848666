"""
A customer's lifecycle in the users context: verification, changes, password
change, deletion, and the seed's customer filter. What other contexts do with
the events is tested with them (and end to end in tests/e2e).
"""

from __future__ import annotations

import time

import pytest
from django.core import signing

from cleave.messaging.models import OutboxEvent
from cleave.testing import customer_headers, flows, published, service_headers, unit
from contexts.users import commands
from contexts.users.models import Customer
from tests.contexts.users.factories import CustomerFactory

pytestmark = flows


def register(api, email="ada@example.com", password="correct horse", name="Ada"):
    response = api.post(
        "/api/users/", {"email": email, "password": password, "name": name}, format="json"
    )
    assert response.status_code == 201, response.content
    return response.json()


def login(api, email="ada@example.com", password="correct horse") -> dict:
    response = api.post("/api/users/token", {"email": email, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def bearer(tokens: dict) -> dict:
    return {"Authorization": f"Bearer {tokens['access']}"}


def mailed_token(customer_id: str) -> str:
    """The token of the latest `user.verification_requested` for this customer."""
    [*_, event] = [
        row
        for row in published("users", "user.verification_requested")
        if row.data["customer_id"] == customer_id
    ]
    return event.data["token"]


def assert_problem(response, status, code=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    if code:
        assert response.json()["type"].endswith(code), response.json()


# --- verification ------------------------------------------------------------------------


def test_registering_asks_to_verify_the_address_and_the_token_verifies_it_once(api):
    customer = register(api)
    assert customer["email_verified"] is False
    [request] = published("users", "user.verification_requested")
    assert request.data["email"] == "ada@example.com"

    response = api.post("/api/users/verify", {"token": mailed_token(customer["id"])}, format="json")

    assert response.status_code == 200, response.content
    assert response.json()["email_verified"] is True
    [verified] = published("users", "user.verified")
    assert verified.data["customer_id"] == customer["id"]
    again = api.post("/api/users/verify", {"token": mailed_token(customer["id"])}, format="json")
    assert again.status_code == 200
    assert len(published("users", "user.verified")) == 1  # no second event


@pytest.mark.parametrize("token", ["", "nope", "a" * 2000, "eyJ0eXAi.forged:1abc:xyz"])
def test_a_bad_verification_token_is_a_400_problem(api, token):
    register(api)

    response = api.post("/api/users/verify", {"token": token}, format="json")

    assert response.status_code == 400, response.content
    assert not published("users", "user.verified")


def test_an_expired_verification_token_is_refused_and_a_new_one_can_be_asked_for(
    api, settings, monkeypatch
):
    customer = register(api)
    token = mailed_token(customer["id"])
    settings.CLEAVE_EMAIL_VERIFY_MAX_AGE = 60
    later = time.time() + 61
    monkeypatch.setattr(signing.time, "time", lambda: later)

    response = api.post("/api/users/verify", {"token": token}, format="json")

    assert_problem(response, 400, "verification-token-expired")
    monkeypatch.undo()
    resend = api.post("/api/users/verify/resend", headers=bearer(login(api)))
    assert resend.status_code == 202 and resend.json() == {"sent": True}
    assert len(published("users", "user.verification_requested")) == 2


def test_a_token_signed_for_another_purpose_does_not_verify(api):
    customer = register(api)
    forged = signing.dumps({"customer": customer["id"], "email": "ada@example.com"}, salt="other")

    response = api.post("/api/users/verify", {"token": forged}, format="json")

    assert_problem(response, 400, "verification-token-invalid")


# --- changes ---------------------------------------------------------------------------


def test_renaming_publishes_what_changed(api):
    customer = register(api)
    headers = bearer(login(api))

    response = api.patch(
        "/api/users/me", {"name": "  Ada Lovelace "}, format="json", headers=headers
    )

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Ada Lovelace"
    [updated] = published("users", "user.updated")
    assert updated.data["changed"] == ["name"]
    assert updated.data["customer_id"] == customer["id"]
    same = api.patch("/api/users/me", {"name": "Ada Lovelace"}, format="json", headers=headers)
    assert same.status_code == 200
    assert len(published("users", "user.updated")) == 1  # nothing changed: no event


def test_a_new_address_is_unverified_and_gets_a_token_of_its_own(api):
    customer = register(api)
    old_token = mailed_token(customer["id"])
    api.post("/api/users/verify", {"token": old_token}, format="json")
    headers = bearer(login(api))

    response = api.patch(
        "/api/users/me",
        {"email": "Ada@Lovelace.org", "current_password": "correct horse"},
        format="json",
        headers=headers,
    )

    assert response.status_code == 200, response.content
    assert response.json()["email"] == "ada@lovelace.org"
    assert response.json()["email_verified"] is False
    [updated] = published("users", "user.updated")
    assert updated.data["changed"] == ["email"] and updated.data["email_verified"] is False
    new_token = mailed_token(customer["id"])
    assert new_token != old_token
    # the old address's token no longer proves anything
    stale = api.post("/api/users/verify", {"token": old_token}, format="json")
    assert_problem(stale, 400, "verification-token-invalid")
    assert api.post("/api/users/verify", {"token": new_token}, format="json").status_code == 200


def test_an_address_another_customer_has_is_a_409(api):
    register(api)
    register(api, email="grace@example.com", name="Grace")

    response = api.patch(
        "/api/users/me",
        {"email": "GRACE@example.com", "current_password": "correct horse"},
        format="json",
        headers=bearer(login(api)),
    )

    assert_problem(response, 409, "email-taken")
    assert not published("users", "user.updated")


@pytest.mark.parametrize(
    "body", [{}, {"name": "Ada\r\nBcc: x@example.com"}, {"email": "not an address"}, {"name": 7}]
)
def test_a_bad_change_is_a_400_problem(api, body):
    register(api)

    response = api.patch("/api/users/me", body, format="json", headers=bearer(login(api)))

    assert_problem(response, 400)
    assert not published("users", "user.updated")


# --- password --------------------------------------------------------------------------


def test_changing_the_password_ends_other_sessions_and_returns_new_tokens(api):
    register(api)
    first = login(api)

    response = api.post(
        "/api/users/me/password",
        {"current_password": "correct horse", "new_password": "battery staple 2"},
        format="json",
        headers=bearer(first),
    )

    assert response.status_code == 200, response.content
    fresh = response.json()
    refreshed = api.post("/api/users/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert_problem(refreshed, 401)
    assert (
        api.post(
            "/api/users/token/refresh", {"refresh": fresh["refresh"]}, format="json"
        ).status_code
        == 200
    )
    assert login(api, password="battery staple 2")["access"]
    old = api.post(
        "/api/users/token", {"email": "ada@example.com", "password": "correct horse"}, format="json"
    )
    assert_problem(old, 401)


def test_a_password_change_ends_every_earlier_session_at_once_in_every_context(api):
    # given Carol signed in twice
    register(api, email="carol@example.com", name="Carol")
    first = login(api, email="carol@example.com")
    second = login(api, email="carol@example.com")

    # when she changes her password with the second sign-in
    response = api.post(
        "/api/users/me/password",
        {"current_password": "correct horse", "new_password": "battery staple 2"},
        format="json",
        headers=bearer(second),
    )

    # then neither earlier access token works anywhere, and the new pair works
    # everywhere at once, though issued within the same second
    assert response.status_code == 200, response.content
    fresh = response.json()
    for path in ("/api/users/me", "/api/orders/cart", "/api/notifications/"):
        for earlier in (first, second):
            refused = api.get(path, headers=bearer(earlier))
            assert_problem(refused, 401)
            assert refused.json()["detail"] == "The token was revoked."
        assert api.get(path, headers=bearer(fresh)).status_code == 200, path
    taking = api.patch(
        "/api/users/me",
        {"email": "attacker@example.com", "current_password": "correct horse"},
        format="json",
        headers=bearer(first),
    )
    assert_problem(taking, 401)
    [changed] = published("users", "user.password_changed")
    assert (
        changed.data["customer_id"] == api.get("/api/users/me", headers=bearer(fresh)).json()["id"]
    )


def test_an_email_change_needs_the_current_password(api):
    register(api)
    headers = bearer(login(api))

    missing = api.patch(
        "/api/users/me", {"email": "attacker@example.com"}, format="json", headers=headers
    )
    wrong = api.patch(
        "/api/users/me",
        {"email": "attacker@example.com", "current_password": "not it"},
        format="json",
        headers=headers,
    )

    assert_problem(missing, 400)
    assert missing.json()["errors"]["current_password"]
    assert_problem(wrong, 403, "wrong-password")
    assert api.get("/api/users/me", headers=headers).json()["email"] == "ada@example.com"
    assert not published("users", "user.updated")


def test_an_email_change_tells_the_old_address_which_stays_reserved_until_verified(
    api, outbox_mail
):
    customer = register(api, email="carol@example.com", name="Carol")
    headers = bearer(login(api, email="carol@example.com"))

    response = api.patch(
        "/api/users/me",
        {"email": "carol@elsewhere.org", "current_password": "correct horse"},
        format="json",
        headers=headers,
    )

    assert response.status_code == 200, response.content
    [changed] = published("users", "user.email_changed")
    assert changed.data["previous_email"] == "carol@example.com"
    assert changed.data["email"] == "carol@elsewhere.org"
    told = [mail for mail in outbox_mail if mail.to == ["carol@example.com"]]
    assert any("changed" in mail.subject for mail in told), [m.subject for m in outbox_mail]
    # the old address can be neither registered nor taken while the new one is unproven
    again = api.post(
        "/api/users/",
        {"email": "Carol@Example.com", "password": "correct horse", "name": "Mallory"},
        format="json",
    )
    assert_problem(again, 409, "email-taken")
    register(api, email="grace@example.com", name="Grace")
    taking = api.patch(
        "/api/users/me",
        {"email": "carol@example.com", "current_password": "correct horse"},
        format="json",
        headers=bearer(login(api, email="grace@example.com")),
    )
    assert_problem(taking, 409, "email-taken")
    # once the new address is verified, the old one is free
    verified = api.post("/api/users/verify", {"token": mailed_token(customer["id"])}, format="json")
    assert verified.status_code == 200, verified.content
    assert register(api, email="carol@example.com", name="Carol II")["email"] == (
        "carol@example.com"
    )


def test_a_wrong_current_password_is_a_403_and_a_weak_new_one_a_400(api):
    register(api)
    headers = bearer(login(api))

    wrong = api.post(
        "/api/users/me/password",
        {"current_password": "not it", "new_password": "battery staple 2"},
        format="json",
        headers=headers,
    )
    weak = api.post(
        "/api/users/me/password",
        {"current_password": "correct horse", "new_password": "password"},
        format="json",
        headers=headers,
    )

    assert_problem(wrong, 403, "wrong-password")
    assert_problem(weak, 400)
    assert weak.json()["errors"]["new_password"]
    assert login(api)["access"]  # unchanged


def test_a_refresh_token_works_once_and_its_reuse_revokes_the_whole_sign_in(api):
    register(api)
    first = login(api)
    second = api.post("/api/users/token/refresh", {"refresh": first["refresh"]}, format="json")
    assert second.status_code == 200, second.content

    reused = api.post("/api/users/token/refresh", {"refresh": first["refresh"]}, format="json")

    assert_problem(reused, 401, "refresh-token-reused")
    # the thief's replay also ends the customer's current session of that sign-in...
    later = api.post(
        "/api/users/token/refresh", {"refresh": second.json()["refresh"]}, format="json"
    )
    assert_problem(later, 401)
    # ... but not another sign-in, and signing in again works
    assert login(api)["refresh"]


def test_blocking_revokes_every_refresh_token(api):
    customer = register(api)
    tokens = login(api)

    commands.customer_block(customer_id=customer["id"])

    refreshed = api.post("/api/users/token/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert_problem(refreshed, 401)


# --- deletion ----------------------------------------------------------------------------


def test_deleting_myself_needs_my_password_then_forgets_me_and_revokes_my_token(api):
    customer = register(api)
    headers = bearer(login(api))

    wrong = api.delete("/api/users/me", {"password": "not it"}, format="json", headers=headers)
    assert_problem(wrong, 403, "wrong-password")
    response = api.delete(
        "/api/users/me", {"password": "correct horse"}, format="json", headers=headers
    )

    assert response.status_code == 204, response.content
    assert not Customer.objects.using("users").filter(pk=customer["id"]).exists()
    [deleted] = published("users", "user.deleted")
    assert deleted.data["customer_id"] == customer["id"]
    # the token stops working at once, and so does the password
    me = api.get("/api/users/me", headers=headers)
    assert_problem(me, 401)
    assert me.json()["detail"] == "The token was revoked."
    refused = api.post(
        "/api/users/token", {"email": "ada@example.com", "password": "correct horse"}, format="json"
    )
    assert_problem(refused, 401)
    # the event log no longer says who they were, and still replays
    for row in OutboxEvent.objects.using("users").filter(type__startswith="user."):
        if row.data["customer_id"] == customer["id"]:
            assert "ada@example.com" not in str(row.data), row.data
            assert row.data.get("name", "") == "", row.data
            if "email" in row.data:
                assert row.data["email"] == f"erased-{customer['id']}@invalid"


def test_deleting_redacts_the_address_left_behind_too(api):
    customer = register(api)
    headers = bearer(login(api))
    api.patch(
        "/api/users/me",
        {"email": "ada@lovelace.org", "current_password": "correct horse"},
        format="json",
        headers=headers,
    )

    commands.customer_delete(customer_id=customer["id"])

    [changed] = OutboxEvent.objects.using("users").filter(type="user.email_changed")
    erased = f"erased-{customer['id']}@invalid"
    assert (changed.data["email"], changed.data["previous_email"]) == (erased, erased)


def test_an_operator_deletes_and_renames_through_the_commands(admin_client):
    customer = CustomerFactory(name="Ada")

    change = admin_client.post(
        f"/admin/users/customer/{customer.id}/change/",
        {"email": customer.email, "name": "Ada L."},
    )
    assert change.status_code == 302, change.content
    [updated] = published("users", "user.updated")
    assert updated.data["name"] == "Ada L."

    delete = admin_client.post(f"/admin/users/customer/{customer.id}/delete/", {"post": "yes"})
    assert delete.status_code == 302, delete.content
    assert published("users", "user.deleted")
    assert not Customer.objects.using("users").filter(pk=customer.id).exists()


# --- the seed's filter -----------------------------------------------------------------


@pytest.fixture
def customers():
    made = [CustomerFactory(email=f"ann{i:02d}@example.com") for i in range(12)]
    made.append(CustomerFactory(email="bob@example.com", status=Customer.Status.BLOCKED))
    return made


def customers_page(api, headers=None, **params):
    return api.get("/api/users/customers", params, headers=headers or service_headers("users:read"))


@unit
def test_the_filter_pages_by_ten_oldest_first(api, customers):
    first = customers_page(api).json()
    second = customers_page(api, offset=10).json()

    assert first["count"] == 13 and (first["limit"], first["offset"]) == (10, 0)
    assert len(first["results"]) == 10 and len(second["results"]) == 3
    ids = [c["id"] for c in first["results"] + second["results"]]
    assert ids == [str(c.id) for c in sorted(customers, key=lambda c: (c.created_at, c.id))]


@unit
def test_the_filter_matches_an_email_exactly_or_by_prefix_and_a_status(api, customers):
    exact = customers_page(api, email="ANN03@example.com").json()
    prefix = customers_page(api, email="ann1*").json()
    blocked = customers_page(api, status="blocked").json()
    none = customers_page(api, email="ann1").json()

    assert [c["email"] for c in exact["results"]] == ["ann03@example.com"]
    assert sorted(c["email"] for c in prefix["results"]) == [
        "ann10@example.com",
        "ann11@example.com",
    ]
    assert [c["email"] for c in blocked["results"]] == ["bob@example.com"]
    assert none["count"] == 0


@unit
@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "٢"},
        {"limit": "2.0"},
        {"offset": -1},
        {"offset": "+1"},
        {"status": "gone"},
    ],
    ids=repr,
)
def test_a_bad_filter_is_a_400_problem(api, customers, params):
    assert_problem(customers_page(api, **params), 400)


@unit
def test_the_filter_is_for_services_with_users_read_and_staff(api, customers, admin_user):
    customer = customers[0]

    assert_problem(customers_page(api, headers=service_headers("orders:read")), 403)
    assert_problem(customers_page(api, headers=customer_headers(customer.id)), 403)
    assert api.get("/api/users/customers").status_code in (401, 403)
    api.force_login(admin_user)
    assert api.get("/api/users/customers", {"limit": 100}).status_code == 200
