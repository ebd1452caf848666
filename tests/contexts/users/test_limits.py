"""
Sign-in is limited per account from an address and per address
(contexts.users.limits): the probe tried 25 wrong passwords for one customer,
then the right one, and got 25x401, then 200.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from cleave.testing import published, unit
from contexts.users import limits

pytestmark = unit

PASSWORD = "correct horse"


def register(api, email="carol@example.com", address="198.51.100.1"):
    body = {"email": email, "password": PASSWORD, "name": "Carol"}
    return api.post("/api/users/", body, format="json", REMOTE_ADDR=address)


def sign_in(api, password, email="carol@example.com", address="203.0.113.66"):
    body = {"email": email, "password": password}
    return api.post("/api/users/token", body, format="json", REMOTE_ADDR=address)


def assert_throttled(response, window=300):
    assert response.status_code == 429, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert 0 < int(response["Retry-After"]) <= window
    assert response.json()["status"] == 429


@pytest.fixture
def later(monkeypatch):
    """Move the limits' clock `seconds` ahead."""

    def move(seconds: float) -> None:
        moved = timezone.now() + timedelta(seconds=seconds)
        monkeypatch.setattr(limits.timezone, "now", lambda: moved)

    return move


def test_guessing_one_customers_password_is_refused_after_five_failures(api, settings):
    assert settings.CLEAVE_SIGNIN_FAILURES == 5
    register(api)

    codes = [sign_in(api, f"guess {n}").status_code for n in range(25)]
    right = sign_in(api, PASSWORD)

    assert codes == [401] * 5 + [429] * 20
    assert_throttled(right)


def test_an_account_that_does_not_exist_is_refused_alike(api):
    register(api)
    for n in range(6):
        sign_in(api, f"guess {n}")

    unknown = [sign_in(api, f"guess {n}", email="nobody@example.com") for n in range(6)]
    known = sign_in(api, "guess", email="carol@example.com")

    assert [response.status_code for response in unknown] == [401] * 5 + [429]
    assert unknown[-1].json()["detail"] == known.json()["detail"]
    assert unknown[-1].json()["type"] == known.json()["type"]


def test_the_owner_signs_in_from_elsewhere_while_the_attacker_is_refused(api):
    register(api)
    for n in range(6):
        sign_in(api, f"guess {n}")

    assert sign_in(api, PASSWORD, address="192.0.2.44").status_code == 200


def test_a_refusal_lasts_only_until_the_window_ends(api, settings, later):
    register(api)
    for n in range(6):
        sign_in(api, f"guess {n}")
    assert_throttled(sign_in(api, PASSWORD))

    later(settings.CLEAVE_SIGNIN_WINDOW + 1)

    assert sign_in(api, PASSWORD).status_code == 200


def test_a_success_is_not_a_failure(api):
    register(api)
    codes = []
    for _ in range(3):
        codes += [sign_in(api, f"guess {n}").status_code for n in range(4)]
        codes.append(sign_in(api, PASSWORD).status_code)

    assert codes == ([401] * 4 + [200]) * 3


def test_an_address_failing_for_many_accounts_is_refused_for_every_one(api, settings):
    settings.CLEAVE_SIGNIN_ADDRESS_FAILURES = 8
    register(api)

    codes = [sign_in(api, "guess", email=f"someone{n}@example.com").status_code for n in range(8)]
    right = sign_in(api, PASSWORD)
    registering = register(api, email="new@example.com", address="203.0.113.66")

    assert codes == [401] * 8
    assert_throttled(right)
    assert_throttled(registering)


def test_refused_refresh_tokens_count_against_the_address(api, settings):
    settings.CLEAVE_SIGNIN_ADDRESS_FAILURES = 3

    codes = [
        api.post(
            "/api/users/token/refresh",
            {"refresh": f"not-a-token-{n}"},
            format="json",
            REMOTE_ADDR="203.0.113.66",
        ).status_code
        for n in range(4)
    ]

    assert codes == [401] * 3 + [429]


def test_already_exists_answers_count_and_then_every_registration_gets_the_same_429(api, settings):
    settings.CLEAVE_SIGNIN_ADDRESS_FAILURES = 3
    register(api)

    taken = [register(api, address="203.0.113.66").status_code for _ in range(3)]
    existing = register(api, address="203.0.113.66")
    fresh = register(api, email="fresh@example.com", address="203.0.113.66")

    assert taken == [409] * 3
    assert_throttled(existing)
    assert_throttled(fresh)
    assert existing.json() == fresh.json()


def test_wrong_passwords_confirming_a_change_are_limited_too(api):
    register(api)
    access = sign_in(api, PASSWORD, address="198.51.100.1").json()["access"]
    headers = {"Authorization": f"Bearer {access}"}

    codes = [
        api.post(
            "/api/users/me/password",
            {"current_password": f"guess {n}", "new_password": "battery staple 2"},
            format="json",
            headers=headers,
            REMOTE_ADDR="203.0.113.66",
        ).status_code
        for n in range(6)
    ]

    assert codes == [403] * 5 + [429]


def test_a_customer_gets_three_verification_mails_an_hour_then_429(api, settings, later):
    assert settings.CLEAVE_THROTTLE_VERIFY_RESEND == "3/hour"
    customer_id = register(api).json()["id"]
    access = sign_in(api, PASSWORD).json()["access"]
    headers = {"Authorization": f"Bearer {access}"}

    codes = [api.post("/api/users/verify/resend", headers=headers).status_code for _ in range(40)]

    assert codes == [202] * 3 + [429] * 37
    assert_throttled(api.post("/api/users/verify/resend", headers=headers), window=3600)
    mails = [
        event
        for event in published("users", "user.verification_requested")
        if event.data["customer_id"] == customer_id
    ]
    assert len(mails) == 1 + 3  # the registration's, and three asked for
    later(3601)
    assert api.post("/api/users/verify/resend", headers=headers).status_code == 202
