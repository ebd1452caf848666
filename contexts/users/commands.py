"""Write side of the users context."""

from __future__ import annotations

from uuid import UUID

from django.contrib.auth.hashers import check_password, make_password
from django.db import IntegrityError, transaction

from cleave import db
from cleave.api import ApplicationError, Conflict
from cleave.events import publish
from cleave.security import TokenError, decode_customer_token, issue_customer_tokens

from .apps import ALIAS
from .models import Customer


class InvalidCredentials(ApplicationError):
    status = 401
    code = "invalid-credentials"
    title = "Not authenticated"


def normalize_email(email: str) -> str:
    return email.strip().lower()


def customer_register(*, email: str, password: str, name: str) -> Customer:
    """Create a customer with a hashed password and publish `user.created`."""
    email = normalize_email(email)
    # hashing takes tens of milliseconds of CPU: done before the first query, so
    # no pooled connection waits idle for it
    hashed = make_password(password)
    try:
        with transaction.atomic(using=ALIAS):
            if Customer.objects.using(ALIAS).filter(email=email).exists():
                raise Conflict(f"A customer with email {email} already exists.", code="email-taken")
            customer = Customer.objects.using(ALIAS).create(
                email=email, name=name.strip(), password=hashed
            )
            publish(
                "user.created",
                {
                    "customer_id": customer.id,
                    "email": customer.email,
                    "name": customer.name,
                    "created_at": customer.created_at,
                },
            )
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict(
            f"A customer with email {email} already exists.", code="email-taken"
        ) from exc
    return customer


# A real hash to check against when the email is unknown, so both paths cost the same.
_DUMMY_HASH: str | None = None


def _dummy_hash() -> str:
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = make_password("cleave-timing-equalizer")
    return _DUMMY_HASH


def customer_authenticate(*, email: str, password: str) -> dict:
    """Return a token pair for valid credentials of an active customer."""
    customer = Customer.objects.using(ALIAS).filter(email=normalize_email(email)).first()
    db.release(ALIAS)  # the connection goes back to its pool while the password is checked
    if customer is None:
        check_password(password, _dummy_hash())
        raise InvalidCredentials("The email or password is wrong.")
    if not check_password(password, customer.password) or not customer.is_active:
        raise InvalidCredentials("The email or password is wrong.")
    return issue_customer_tokens(customer.id, email=customer.email)


def customer_refresh_tokens(*, refresh: str) -> dict:
    """Exchange a valid refresh token of an active customer for a new pair."""
    try:
        claims = decode_customer_token(refresh, token_type="refresh")
        customer_id = UUID(claims["sub"])
    except (TokenError, ValueError) as exc:
        raise InvalidCredentials(str(exc) or "The refresh token is invalid.") from exc
    customer = Customer.objects.using(ALIAS).filter(pk=customer_id).first()
    if customer is None or not customer.is_active:
        raise InvalidCredentials("The refresh token is no longer valid.")
    tokens = issue_customer_tokens(customer.id, email=customer.email)
    return {"access": tokens["access"], "refresh": tokens["refresh"]}


def customer_block(*, customer_id: UUID) -> Customer:
    """Block a customer: no new tokens, and checkout refuses them."""
    with transaction.atomic(using=ALIAS):
        customer = Customer.objects.using(ALIAS).select_for_update().get(pk=customer_id)
        if customer.status != Customer.Status.BLOCKED:
            customer.status = Customer.Status.BLOCKED
            customer.save(using=ALIAS, update_fields=["status", "updated_at"])
            publish("user.blocked", {"customer_id": customer.id})
    return customer
