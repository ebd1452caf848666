"""
The admin's sign-in is throttled (django-axes): after CLEAVE_ADMIN_LOGIN_FAILURES
wrong passwords for one account from one address, or from one address for any,
even the right password is refused there for the cool-off; the probe got in
after 25 wrong ones. An account is never locked from everywhere: five made-up
failures for an operator's name would lock the operator out.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from cleave.testing import unit

pytestmark = unit

LOGIN = "/admin/login/?next=/admin/"


@pytest.fixture
def operator(db):
    return get_user_model().objects.create_superuser("operator", "op@example.com", "right pass 1")


def sign_in(client, username, password, address="203.0.113.7"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def signed_in(response) -> bool:
    return response.status_code == 302 and response["Location"] == "/admin/"


def test_the_right_password_signs_in(client, operator):
    assert signed_in(sign_in(client, "operator", "right pass 1"))


def test_after_five_wrong_passwords_the_account_is_locked_from_that_address_only(
    client, operator, settings
):
    assert settings.AXES_FAILURE_LIMIT == 5
    for _ in range(4):
        assert sign_in(client, "operator", "wrong").status_code == 200  # the form again
    assert sign_in(client, "operator", "wrong").status_code == 429  # the fifth locks

    locked = sign_in(client, "operator", "right pass 1")
    elsewhere = sign_in(client, "operator", "right pass 1", address="198.51.100.9")

    assert locked.status_code == 429 and not signed_in(locked)
    assert signed_in(elsewhere)


def test_behind_the_gateway_an_attacker_locks_out_only_their_own_address(
    client, operator, settings
):
    settings.CLEAVE_TRUSTED_PROXIES = 1  # the gateway appends each client's address

    def through_gateway(username, password, address):
        return client.post(
            LOGIN,
            {"username": username, "password": password},
            REMOTE_ADDR="127.0.0.1",
            HTTP_X_FORWARDED_FOR=f"10.0.0.1, {address}",
        )

    for _ in range(5):
        through_gateway("operator", "guess", "203.0.113.66")
    for number in range(5):
        through_gateway(f"made-up{number}", "guess", "203.0.113.66")

    assert through_gateway("operator", "right pass 1", "203.0.113.66").status_code == 429
    assert signed_in(through_gateway("operator", "right pass 1", "198.51.100.9"))


def test_an_address_guessing_many_accounts_is_locked_out_of_every_one(client, operator):
    for number in range(5):
        sign_in(client, f"someone{number}", "guess")

    from_there = sign_in(client, "operator", "right pass 1")
    from_elsewhere = sign_in(client, "operator", "right pass 1", address="198.51.100.9")

    assert from_there.status_code == 429
    assert signed_in(from_elsewhere)


def test_a_success_before_the_limit_starts_the_count_again(client, operator):
    for _ in range(4):
        sign_in(client, "operator", "wrong")
    assert signed_in(sign_in(client, "operator", "right pass 1"))
    client.logout()
    for _ in range(4):
        sign_in(client, "operator", "wrong")

    assert signed_in(sign_in(client, "operator", "right pass 1"))


def test_a_made_up_forwarded_for_entry_does_not_dodge_the_address_lockout(client, operator):
    for number in range(5):
        client.post(
            LOGIN,
            {"username": f"someone{number}", "password": "guess"},
            REMOTE_ADDR="203.0.113.7",
            HTTP_X_FORWARDED_FOR=f"198.18.7.{number}",
        )

    again = client.post(
        LOGIN,
        {"username": "operator", "password": "right pass 1"},
        REMOTE_ADDR="203.0.113.7",
        HTTP_X_FORWARDED_FOR="198.18.7.99",
    )

    assert again.status_code == 429
