"""Customer and service tokens, service permissions and the token-issuing command."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path

import jwt
import pytest
from django.core.management import CommandError, call_command

from cleave.auth import tokens
from cleave.auth.tokens import (
    ServicePrincipal,
    TokenError,
    decode_customer_token,
    decode_service_token,
    issue_customer_tokens,
    issue_service_token,
)
from cleave.testing import customer_headers, service_headers, unit
from contexts.users import commands

PROJECT_ROOT = Path(__file__).resolve().parents[3]
# Long enough that PyJWT does not warn: the point is the wrong key, not a weak one.
FORGED_SECRET = "an-attacker-guessed-this-secret-but-it-is-wrong"


def _claims(settings, **overrides) -> dict:
    now = int(time.time())
    return {
        "iss": settings.CLEAVE_JWT_ISSUER,
        "aud": tokens.SERVICE_AUDIENCE,
        "sub": "orders",
        "typ": "service",
        "perms": ["users:read"],
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
        **overrides,
    }


def test_a_service_token_round_trips_its_name_and_permissions():
    principal = decode_service_token(issue_service_token("orders", ["users:read", "catalog:read"]))

    assert principal == ServicePrincipal("orders", frozenset({"users:read", "catalog:read"}))


def test_an_expired_service_token_is_rejected():
    token = issue_service_token("orders", ["users:read"], ttl=-5)

    with pytest.raises(TokenError, match="expired"):
        decode_service_token(token)


def test_a_service_token_signed_with_another_secret_is_rejected(settings):
    forged = jwt.encode(_claims(settings), FORGED_SECRET, algorithm="HS256")

    with pytest.raises(TokenError, match="invalid"):
        decode_service_token(forged)


def test_an_unsigned_token_is_rejected(settings):
    unsigned = jwt.encode(_claims(settings), key=None, algorithm="none")

    with pytest.raises(TokenError):
        decode_service_token(unsigned)


@pytest.mark.parametrize(
    "overrides",
    [{"iss": "someone-else"}, {"aud": tokens.CUSTOMER_AUDIENCE}, {"typ": "access"}],
    ids=["issuer", "audience", "type"],
)
def test_a_service_token_with_a_wrong_claim_is_rejected(settings, overrides):
    token = jwt.encode(
        _claims(settings, **overrides), settings.CLEAVE_SERVICE_JWT_SECRET, algorithm="HS256"
    )

    with pytest.raises(TokenError):
        decode_service_token(token)


def test_a_service_token_with_malformed_permissions_is_rejected(settings):
    token = jwt.encode(
        _claims(settings, perms="users:read"), settings.CLEAVE_SERVICE_JWT_SECRET, algorithm="HS256"
    )

    with pytest.raises(TokenError, match="permissions"):
        decode_service_token(token)


def test_a_customer_token_is_not_a_service_token_and_the_reverse():
    tokens = issue_customer_tokens(uuid.uuid4(), email="ada@example.com")

    with pytest.raises(TokenError):
        decode_service_token(tokens["access"])
    with pytest.raises(TokenError):
        decode_customer_token(issue_service_token("orders", []))


def test_a_refresh_token_is_not_an_access_token():
    tokens = issue_customer_tokens(uuid.uuid4())

    with pytest.raises(TokenError, match="access token is required"):
        decode_customer_token(tokens["refresh"])
    assert decode_customer_token(tokens["refresh"], token_type="refresh")["typ"] == "refresh"


def test_an_expired_customer_token_is_rejected(settings):
    settings.CLEAVE_ACCESS_TOKEN_TTL = -5
    tokens = issue_customer_tokens(uuid.uuid4())

    with pytest.raises(TokenError, match="expired"):
        decode_customer_token(tokens["access"])


@pytest.mark.parametrize(
    ("granted", "asked", "allowed"),
    [
        ({"users:read"}, "users:read", True),
        ({"users:read"}, "users:write", False),
        ({"users:write"}, "users:read", True),
        ({"users:write"}, "users:write", True),
        ({"users:*"}, "users:write", True),
        ({"users:*"}, "orders:read", False),
        ({"*"}, "payments:write", True),
        ({"orders:write"}, "users:read", False),
        (set(), "users:read", False),
    ],
)
def test_a_service_principal_holds_what_it_was_granted(granted, asked, allowed):
    assert ServicePrincipal("svc", frozenset(granted)).has(asked) is allowed


@unit
def test_the_api_answers_401_problem_for_forged_or_expired_tokens(api, settings):
    customer = commands.customer_register(email="ada@example.com", password="x" * 10, name="Ada")
    url = f"/api/users/customers/{customer.id}"
    forged = jwt.encode(_claims(settings), FORGED_SECRET, algorithm="HS256")
    expired = issue_service_token("orders", ["users:read"], ttl=-5)

    for token in (forged, expired):
        response = api.get(url, headers={"X-Service-Token": token})
        assert response.status_code == 401, response.content
        assert response["Content-Type"] == "application/problem+json"
    refresh = issue_customer_tokens(customer.id)["refresh"]
    response = api.get("/api/users/me", headers={"Authorization": f"Bearer {refresh}"})
    assert response.status_code == 401

    assert api.get(url, headers=service_headers("users:read")).status_code == 200
    assert api.get(url, headers=service_headers("orders:read")).status_code == 403
    # A customer token does not open a service endpoint.
    assert api.get(url, headers=customer_headers(customer.id)).status_code == 403


def test_issue_service_token_prints_a_token_carrying_the_permissions():
    out = StringIO()

    call_command(
        "issue_service_token",
        "--service",
        "ops-script",
        "--permissions",
        "analytics:read, orders:write",
        "--ttl",
        "120",
        stdout=out,
    )

    principal = decode_service_token(out.getvalue().strip())
    assert principal.name == "ops-script"
    assert principal.permissions == frozenset({"analytics:read", "orders:write"})
    claims = jwt.decode(out.getvalue().strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 120


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--service", "ops", "--permissions", "analytics"], "Invalid permission"),
        (["--service", "ops", "--permissions", "orders:delete"], "Invalid permission"),
        (["--service", "no spaces", "--permissions", "orders:read"], "--service"),
        (["--service", "ops", "--ttl", "0"], "--ttl"),
        (["--service", "ops", "--ttl", str(366 * 24 * 3600 + 1)], "--ttl must be between 1 and"),
    ],
)
def test_issue_service_token_refuses_bad_arguments(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("issue_service_token", *arguments, stdout=StringIO())


def test_issue_service_token_exits_non_zero_with_a_message_from_the_shell():
    result = subprocess.run(
        [
            sys.executable,
            "manage.py",
            "issue_service_token",
            "--service",
            "ops",
            "--permissions",
            "everything",
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert result.stdout == ""
    assert "Invalid permission(s) ['everything']" in result.stderr


def test_a_view_with_read_and_write_permissions_checks_each_by_method():
    from types import SimpleNamespace

    from django.contrib.auth.models import AnonymousUser

    from cleave.auth.permissions import ServicePermission
    from cleave.auth.tokens import ServicePrincipal
    from cleave.core.declarations import Operation

    view = SimpleNamespace(
        operations=(
            Operation("stock", "item_get", "GET", "/items", permission="stock:read"),
            Operation("stock", "item_create", "POST", "/items", permission="stock:write"),
        ),
        staff_permission="stock.view_item",
    )
    reader = ServicePrincipal("reporting", frozenset({"stock:read"}))

    def operator(*held):
        return SimpleNamespace(
            is_authenticated=True, is_staff=True, is_active=True, has_perm=lambda p: p in held
        )

    staff = operator("stock.view_item")
    check = ServicePermission().has_permission

    assert check(SimpleNamespace(method="GET", user=reader), view)
    assert not check(SimpleNamespace(method="POST", user=reader), view)
    assert check(SimpleNamespace(method="GET", user=staff), view)
    assert not check(SimpleNamespace(method="POST", user=staff), view)
    assert not check(SimpleNamespace(method="GET", user=operator()), view)  # the flag alone
    assert not check(SimpleNamespace(method="GET", user=AnonymousUser()), view)


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
def test_a_token_whose_time_is_a_numeric_string_is_rejected(settings, claim):
    # PyJWT compares int(claims["exp"]): a string passes it, signed with the right secret
    now = int(time.time())
    times = {"iat": now, "exp": now + 600, "nbf": now - 10}
    forged = jwt.encode(
        _claims(settings, **{**times, claim: str(times[claim])}),
        settings.CLEAVE_SERVICE_JWT_SECRET,
        algorithm="HS256",
    )

    with pytest.raises(TokenError, match="invalid"):
        decode_service_token(forged)


@pytest.mark.parametrize("value", [True, None, [1], "9999999999"])
def test_a_customer_token_whose_expiry_is_not_a_number_is_refused(api, settings, value):
    now = int(time.time())
    forged = jwt.encode(
        {
            "iss": settings.CLEAVE_JWT_ISSUER,
            "aud": tokens.CUSTOMER_AUDIENCE,
            "sub": str(uuid.uuid4()),
            "typ": "access",
            "iat": now,
            "exp": value,
            "jti": uuid.uuid4().hex,
        },
        settings.CLEAVE_JWT_SECRET,
        algorithm="HS256",
    )

    with pytest.raises(TokenError):
        decode_customer_token(forged)
    response = api.get("/api/users/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"


def test_a_token_with_a_fractional_expiry_is_still_accepted(settings):
    # RFC 7519's NumericDate may have a fraction; only non-numbers are refused
    claims = _claims(settings, exp=time.time() + 60.5)
    token = jwt.encode(claims, settings.CLEAVE_SERVICE_JWT_SECRET, algorithm="HS256")

    assert decode_service_token(token).name == "orders"


@unit
def test_a_revocation_refuses_tokens_issued_before_it_in_the_same_second_but_not_at_it(api):
    """The pitfall of whole-second `iat`: a password change's new pair shares its second."""
    from datetime import timedelta

    from cleave.auth import revocations
    from cleave.auth.tokens import token_instant

    customer = commands.customer_register(
        email="carol@example.com", password="correct horse", name="Carol"
    )
    changed_at = token_instant().replace(microsecond=500_000)
    just_before = issue_customer_tokens(
        customer.id, issued_at=changed_at - timedelta(milliseconds=1)
    )
    same_second = issue_customer_tokens(customer.id, issued_at=changed_at.replace(microsecond=0))
    at_the_change = issue_customer_tokens(customer.id, issued_at=changed_at)

    revocations.revoke(customer.id, alias="users", reason="user.password_changed", at=changed_at)

    def me(tokens):
        return api.get("/api/users/me", headers={"Authorization": f"Bearer {tokens['access']}"})

    assert me(just_before).status_code == 401
    assert me(same_second).status_code == 401
    assert me(at_the_change).status_code == 200
    assert decode_customer_token(at_the_change["access"])["iat"] == changed_at.timestamp()


def test_a_service_token_made_to_live_for_years_is_refused(settings):
    assert settings.CLEAVE_SERVICE_TOKEN_MAX_TTL == 3600
    now = int(time.time())
    forever = jwt.encode(
        _claims(settings, iat=now, exp=4102444800),  # 2100-01-01
        settings.CLEAVE_SERVICE_JWT_SECRET,
        algorithm="HS256",
    )
    an_hour = jwt.encode(
        _claims(settings, iat=now, exp=now + 3600),
        settings.CLEAVE_SERVICE_JWT_SECRET,
        algorithm="HS256",
    )

    with pytest.raises(TokenError, match="lives longer"):
        decode_service_token(forever)
    assert decode_service_token(an_hour).name == "orders"


@unit
def test_the_api_refuses_a_service_token_past_the_maximum_lifetime(api, settings):
    settings.CLEAVE_SERVICE_TOKEN_MAX_TTL = 600
    long_lived = issue_service_token("reporting", ["analytics:read"], ttl=601)
    short_lived = issue_service_token("reporting", ["analytics:read"], ttl=600)

    refused = api.get("/api/analytics/summary", headers={"X-Service-Token": long_lived})
    accepted = api.get("/api/analytics/summary", headers={"X-Service-Token": short_lived})

    assert refused.status_code == 401
    assert refused["Content-Type"] == "application/problem+json"
    assert accepted.status_code == 200


def test_issue_service_token_issues_at_most_the_maximum_and_by_default(settings):
    settings.CLEAVE_SERVICE_TOKEN_MAX_TTL = 900
    out = StringIO()

    call_command("issue_service_token", "--service", "ops", stdout=out)

    claims = jwt.decode(out.getvalue().strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 900
    with pytest.raises(CommandError, match="--ttl must be between 1 and 900"):
        call_command("issue_service_token", "--service", "ops", "--ttl", "901", stdout=StringIO())


def test_a_minted_lifetime_longer_than_the_maximum_stops_the_process(tmp_path):
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=PROJECT_ROOT,
        env={
            **os.environ,
            "CLEAVE_DATA_DIR": str(tmp_path),
            "CLEAVE_SERVICE_TOKEN_TTL": "7200",
            "CLEAVE_SERVICE_TOKEN_MAX_TTL": "3600",
        },
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "CLEAVE_SERVICE_TOKEN_TTL (7200) must be at most" in result.stderr
