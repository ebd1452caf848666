import time

import jwt
import pytest
from django.conf import settings
from django.contrib.auth.hashers import identify_hasher

from cleave.testing import customer_headers, flows, published, service_headers, unit
from contexts.users.commands import customer_block
from contexts.users.models import Customer
from tests.contexts.users.factories import CustomerFactory


def register(api, email="ada@example.com", password="correct horse", name="Ada"):
    return api.post(
        "/api/users/", {"email": email, "password": password, "name": name}, format="json"
    )


def tokens(api, email="ada@example.com", password="correct horse"):
    return api.post("/api/users/token", {"email": email, "password": password}, format="json")


@flows
def test_registering_creates_a_customer_with_an_argon2_password_and_publishes_user_created(api):
    response = register(api, email="Ada@Example.COM")

    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "name", "status", "email_verified", "created_at"}
    assert body["email_verified"] is False
    assert body["email"] == "ada@example.com" and body["status"] == "active"
    customer = Customer.objects.get(pk=body["id"])
    assert identify_hasher(customer.password).algorithm == "argon2"
    [event] = published("users", "user.created")
    assert event.data["customer_id"] == body["id"] and event.source == "users"


@unit
def test_an_email_can_register_only_once(api):
    register(api)
    response = register(api, email="ADA@example.com")
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"


@unit
@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"email": "not-an-email", "password": "correct horse", "name": "A"}, "email"),
        ({"email": "a@example.com", "password": "short", "name": "A"}, "password"),
        ({"email": "a@example.com", "password": "correct horse"}, "name"),
    ],
)
def test_invalid_registrations_are_refused_field_by_field(api, payload, field):
    response = api.post("/api/users/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()["errors"]


@unit
@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("password", "This password is too common."),
        ("12345678", "This password is entirely numeric."),
        ("ada.lovelace@example.com", "The password is too similar to the email."),
    ],
)
def test_weak_passwords_are_refused_with_the_validators_messages(api, password, message):
    response = api.post(
        "/api/users/",
        {"email": "ada.lovelace@example.com", "password": password, "name": "Ada"},
        format="json",
    )

    assert response.status_code == 400
    assert message in response.json()["errors"]["password"]


@unit
def test_tokens_for_good_credentials_and_401_for_bad_ones(api):
    register(api)
    good = tokens(api)
    assert good.status_code == 200
    assert good.json()["token_type"] == "Bearer"
    assert good.json()["expires_in"] == settings.CLEAVE_ACCESS_TOKEN_TTL
    assert tokens(api, password="wrong password").status_code == 401
    assert tokens(api, email="nobody@example.com").status_code == 401


@unit
def test_me_shows_the_authenticated_customer(api):
    customer_id = register(api).json()["id"]
    access = tokens(api).json()["access"]
    response = api.get("/api/users/me", headers={"Authorization": f"Bearer {access}"})
    assert response.status_code == 200 and response.json()["id"] == customer_id
    assert api.get("/api/users/me").status_code == 401


@unit
def test_an_expired_access_token_is_refused(api):
    customer = CustomerFactory()
    expired = jwt.encode(
        {
            "iss": settings.CLEAVE_JWT_ISSUER,
            "aud": "cleave:customer",
            "sub": str(customer.id),
            "typ": "access",
            "iat": int(time.time()) - 100,
            "exp": int(time.time()) - 10,
            "jti": "x",
        },
        settings.CLEAVE_JWT_SECRET,
        algorithm="HS256",
    )
    response = api.get("/api/users/me", headers={"Authorization": f"Bearer {expired}"})
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


@unit
def test_refresh_rotates_tokens_and_refuses_an_access_token(api):
    register(api)
    pair = tokens(api).json()
    response = api.post("/api/users/token/refresh", {"refresh": pair["refresh"]}, format="json")
    assert response.status_code == 200 and set(response.json()) == {"access", "refresh"}
    wrong = api.post("/api/users/token/refresh", {"refresh": pair["access"]}, format="json")
    assert wrong.status_code == 401


@unit
def test_a_blocked_customer_gets_no_tokens(api):
    register(api)
    customer_block(customer_id=Customer.objects.get().id)
    assert tokens(api).status_code == 401


@unit
def test_customer_lookup_is_for_services_with_users_read(api):
    customer = CustomerFactory()
    url = f"/api/users/customers/{customer.id}"
    assert api.get(url).status_code == 401
    assert api.get(url, headers=customer_headers(customer.id)).status_code == 403
    assert api.get(url, headers=service_headers("orders:read")).status_code == 403
    response = api.get(url, headers=service_headers("users:read"))
    assert response.status_code == 200 and response.json()["status"] == "active"


@unit
@pytest.mark.parametrize(
    "name",
    ["Ada\r\nBcc: mallory@example.com", "Ada\nLovelace", "Ada\x00", "Ada\x1b[2J", "Ada\u202e"],
    ids=repr,
)
def test_a_name_with_control_characters_is_refused(api, name):
    response = register(api, name=name)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "name" in response.json()["errors"]
    assert not Customer.objects.exists()


@unit
def test_a_password_is_taken_as_typed_control_characters_included(api):
    assert register(api, password="correct\thorse battery").status_code == 201
    assert tokens(api, password="correct\thorse battery").status_code == 200
