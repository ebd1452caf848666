"""
Write side of the users context: a customer's whole life, each step one
command that changes the customer and publishes what happened in the same
transaction.

    register ─> user.created + user.verification_requested
    verify ───> user.verified (a previous address, reserved, is released)
    update ───> user.updated (+ user.email_changed to tell the previous address,
                and user.verification_requested for the new one)
    password ─> user.password_changed (every token issued before it is refused)
    block ────> user.blocked
    delete ───> user.deleted (the row is gone; what the event log said of the
                customer is redacted)

A password change, a block and a deletion refuse the customer's tokens in
this context at once, in the same transaction (`cleave.revocations`); the
other contexts follow their events.

The admin goes through these commands too, never through a bare save().
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from django.conf import settings
from django.contrib.auth.hashers import check_password, make_password
from django.core import signing
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from cleave.auth import revocations
from cleave.auth.tokens import (
    TokenError,
    decode_customer_token,
    issue_customer_tokens,
    token_instant,
)
from cleave.core import db
from cleave.core.errors import Conflict, Forbidden, Invalid, NotAuthenticated, NotFound
from cleave.messaging.publish import publish
from cleave.messaging.replay import redact
from contracts import users
from contracts.users import erased_fields

from . import emails
from .apps import ALIAS
from .models import Customer, RefreshToken

# signs the email verification tokens (with SECRET_KEY): a token of another
# purpose signed with the same key does not pass as one of these
VERIFY_SALT = "contexts.users.verify-email"


class InvalidCredentials(NotAuthenticated):
    code = "invalid-credentials"
    title = "Not authenticated"


class InvalidVerificationToken(Invalid):
    code = "verification-token-invalid"
    title = "Invalid verification token"


class WrongPassword(Forbidden):
    """The customer's current password, asked again before a change, is wrong."""

    code = "wrong-password"
    title = "Wrong password"


class InvalidEmail(Invalid):
    """An address that holds characters no address may hold (see `.emails`)."""

    code = "validation-error"
    title = "Invalid input"


def normalize_email(email: str) -> str:
    """The address as stored and compared (`.emails`); InvalidEmail when it cannot be one."""
    try:
        return emails.normalize_email(email)
    except emails.UnacceptableEmail as exc:
        raise InvalidEmail(
            "The request body or parameters are invalid.", errors={"email": [str(exc)]}
        ) from None


def customer_register(*, email: str, password: str, name: str) -> Customer:
    """Create a customer with a hashed password and publish `user.created`."""
    email = normalize_email(email)
    # hashing takes tens of milliseconds of CPU: done before the first query, so
    # no pooled connection waits idle for it
    hashed = make_password(password)
    try:
        with transaction.atomic(using=ALIAS):
            if _taken(email):
                raise _email_taken(email)
            customer = Customer.objects.create(email=email, name=name.strip(), password=hashed)
            publish(
                users.USER_CREATED,
                {
                    "customer_id": customer.id,
                    "email": customer.email,
                    "name": customer.name,
                    "created_at": customer.created_at,
                },
            )
            _request_verification(customer)
    except IntegrityError as exc:  # a concurrent registration won the race
        raise Conflict(
            f"A customer with email {email} already exists.", code="email-taken"
        ) from exc
    return customer


def _email_taken(email: str) -> Conflict:
    return Conflict(f"A customer with email {email} already exists.", code="email-taken")


def _taken(email: str, *, besides: UUID | None = None) -> bool:
    """Whether a customer (other than `besides`) has `email`, or holds it reserved."""
    holders = Customer.objects.filter(Q(email=email) | Q(previous_email=email))
    if besides is not None:
        holders = holders.exclude(pk=besides)
    return holders.exists()


# --- email verification ---------------------------------------------------------------


def verification_token(customer: Customer) -> tuple[str, datetime]:
    """A signed token proving `customer.email` (and only that address), and when it expires."""
    token = signing.dumps({"customer": str(customer.id), "email": customer.email}, salt=VERIFY_SALT)
    return token, timezone.now() + timedelta(seconds=settings.CLEAVE_EMAIL_VERIFY_MAX_AGE)


def _request_verification(customer: Customer) -> None:
    """Publish the token for the notifications context to mail (inside the caller's transaction)."""
    token, expires_at = verification_token(customer)
    publish(
        users.USER_VERIFICATION_REQUESTED,
        {
            "customer_id": customer.id,
            "email": customer.email,
            "name": customer.name,
            "token": token,
            "expires_at": expires_at,
        },
    )


def customer_resend_verification(*, customer_id: UUID) -> bool:
    """Mail a new token for an address not yet verified; False when it already is."""
    with transaction.atomic(using=ALIAS):
        customer = _locked(customer_id)
        if customer.email_verified:
            return False
        _request_verification(customer)
    return True


def customer_verify(*, token: str) -> Customer:
    """
    Mark the address a token was issued for verified, once (`user.verified`).

    A token is refused when it was tampered with, is older than
    `CLEAVE_EMAIL_VERIFY_MAX_AGE`, or names an address the customer no longer
    has. Verifying again answers the customer as it is, with no new event.
    """
    try:
        max_age = settings.CLEAVE_EMAIL_VERIFY_MAX_AGE
        claims = signing.loads(token, salt=VERIFY_SALT, max_age=max_age)
        customer_id = UUID(str(claims["customer"]))
        email = str(claims["email"])
    except signing.SignatureExpired as exc:
        raise InvalidVerificationToken(
            "The verification token has expired; ask for a new one "
            "(POST /api/users/verify/resend).",
            code="verification-token-expired",
        ) from exc
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise InvalidVerificationToken("The verification token is not valid.") from exc
    with transaction.atomic(using=ALIAS):
        customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
        if customer is None or customer.email != email:
            raise InvalidVerificationToken(
                "The verification token is for an address this account no longer has."
            )
        if customer.email_verified_at is None:
            customer.email_verified_at = timezone.now()
            # the new address is proven: the one it replaced is free again
            customer.previous_email = None
            customer.save(update_fields=["email_verified_at", "previous_email", "updated_at"])
            publish(
                users.USER_VERIFIED,
                {
                    "customer_id": customer.id,
                    "email": customer.email,
                    "verified_at": customer.email_verified_at,
                },
            )
    return customer


# --- changes --------------------------------------------------------------------------


def customer_update(
    *,
    customer_id: UUID,
    name: str | None = None,
    email: str | None = None,
    current_password: str | None = None,
) -> Customer:
    """
    Change a customer's name and/or email and publish `user.updated` naming
    what changed (nothing changed: no event).

    A new email is unverified again and gets a verification token of its
    own; the address it replaces is told (`user.email_changed`) and stays
    reserved, so that nobody registers or takes it, until the new one is
    verified. The customer's own request gives `current_password`, checked
    before an email changes (WrongPassword); an operator's gives none.
    """
    if email is not None:
        email = normalize_email(email)
        if current_password is not None:
            _check_own_password(customer_id, current_password, "The current password is wrong.")
    try:
        with transaction.atomic(using=ALIAS):
            customer = _locked(customer_id)
            changed: list[str] = []
            previous = customer.email
            if name is not None and name.strip() != customer.name:
                customer.name = name.strip()
                changed.append("name")
            if email is not None and email != customer.email:
                if _taken(email, besides=customer.id):
                    raise _email_taken(email)
                if customer.previous_email is None:
                    customer.previous_email = previous
                elif customer.previous_email == email:
                    customer.previous_email = None  # back to the address it reserved
                customer.email = email
                customer.email_verified_at = None
                changed.append("email")
            if not changed:
                return customer
            customer.save()
            publish(
                users.USER_UPDATED,
                {
                    "customer_id": customer.id,
                    "email": customer.email,
                    "name": customer.name,
                    "email_verified": customer.email_verified,
                    "changed": changed,
                    "updated_at": customer.updated_at,
                },
            )
            if "email" in changed:
                publish(
                    users.USER_EMAIL_CHANGED,
                    {
                        "customer_id": customer.id,
                        "email": customer.email,
                        "previous_email": previous,
                        "name": customer.name,
                        "changed_at": customer.updated_at,
                    },
                )
                _request_verification(customer)
    except IntegrityError as exc:  # a concurrent change took the address first
        raise _email_taken(email or "") from exc
    return customer


def customer_change_password(
    *, customer_id: UUID, current_password: str, new_password: str
) -> dict[str, Any]:
    """
    Replace a customer's password (the current one asked again), end every
    session at once (every refresh token issued so far is revoked, and every
    access token issued before the change is refused: here in this
    transaction, in the other contexts on `user.password_changed`) and
    return a fresh token pair for this one, issued at the change's instant.
    """
    _check_own_password(customer_id, current_password, "The current password is wrong.")
    hashed = make_password(new_password)
    with transaction.atomic(using=ALIAS):
        customer = _locked(customer_id)
        customer.password = hashed
        customer.save(update_fields=["password", "updated_at"])
        _revoke_refresh_tokens(customer)
        changed_at = token_instant()
        revocations.revoke(
            customer.id, alias=ALIAS, reason=users.USER_PASSWORD_CHANGED.name, at=changed_at
        )
        publish(users.USER_PASSWORD_CHANGED, {"customer_id": customer.id, "changed_at": changed_at})
        return _issue_tokens(customer, issued_at=changed_at)


def _check_own_password(customer_id: UUID, password: str, refusal: str) -> None:
    """The customer's password, asked again before a change that needs it (WrongPassword)."""
    customer = Customer.objects.filter(pk=customer_id).first()
    db.release(ALIAS)  # the connection goes back to its pool while the password is checked
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    if not check_password(password, customer.password):
        raise WrongPassword(refusal)


def _locked(customer_id: UUID) -> Customer:
    customer = Customer.objects.select_for_update().filter(pk=customer_id).first()
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
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
    customer = Customer.objects.filter(email=normalize_email(email)).first()
    db.release(ALIAS)  # the connection goes back to its pool while the password is checked
    if customer is None:
        check_password(password, _dummy_hash())
        raise InvalidCredentials("The email or password is wrong.")
    if not check_password(password, customer.password) or not customer.is_active:
        raise InvalidCredentials("The email or password is wrong.")
    with transaction.atomic(using=ALIAS):
        # a password change or a block committed while the password was checked wins
        current = Customer.objects.select_for_update().filter(pk=customer.pk).first()
        if current is None or current.password != customer.password or not current.is_active:
            raise InvalidCredentials("The email or password is wrong.")
        return _issue_tokens(current)


def customer_refresh_tokens(*, refresh: str) -> dict:
    """
    Exchange a refresh token for a new pair (rotation). Each refresh token
    works once: presenting one already used (stolen, or replayed) revokes
    its whole family, so neither the thief nor the customer can go on with
    it, and the customer signs in again.
    """
    try:
        claims = decode_customer_token(refresh, token_type="refresh")
        customer_id = UUID(claims["sub"])
        jti = str(claims["jti"])
    except (TokenError, KeyError, ValueError) as exc:
        raise InvalidCredentials(str(exc) or "The refresh token is invalid.") from exc
    now = timezone.now()
    with transaction.atomic(using=ALIAS):
        issued = (
            RefreshToken.objects.select_for_update()
            .select_related("customer")
            .filter(pk=jti, customer_id=customer_id)
            .first()
        )
        if issued is None or issued.revoked_at is not None:
            raise InvalidCredentials("The refresh token is no longer valid.")
        if issued.used_at is not None:
            # committed before the refusal is raised: the family stays revoked
            RefreshToken.objects.filter(family=issued.family).update(revoked_at=now)
            reused = True
        else:
            reused = False
            issued.used_at = now
            issued.save(update_fields=["used_at"])
            if not issued.customer.is_active:
                raise InvalidCredentials("The refresh token is no longer valid.")
            tokens = _issue_tokens(issued.customer, family=issued.family)
    if reused:
        raise InvalidCredentials(
            "The refresh token was already used: every token of this sign-in is revoked; "
            "sign in again.",
            code="refresh-token-reused",
        )
    return {"access": tokens["access"], "refresh": tokens["refresh"]}


def _issue_tokens(
    customer: Customer, *, family: UUID | None = None, issued_at: datetime | None = None
) -> dict[str, Any]:
    """A token pair whose refresh token is recorded (a new family for a new sign-in)."""
    family = family or uuid4()
    jti = uuid4().hex
    RefreshToken.objects.filter(
        customer=customer, expires_at__lt=timezone.now()
    ).delete()  # the customer's expired ones: nothing can use them any more
    RefreshToken.objects.create(
        jti=jti,
        family=family,
        customer=customer,
        expires_at=timezone.now() + timedelta(seconds=settings.CLEAVE_REFRESH_TOKEN_TTL),
    )
    return issue_customer_tokens(
        customer.id, email=customer.email, refresh_id=jti, family=str(family), issued_at=issued_at
    )


def _revoke_refresh_tokens(customer: Customer) -> None:
    RefreshToken.objects.filter(customer=customer, revoked_at__isnull=True).update(
        revoked_at=timezone.now()
    )


def customer_block(*, customer_id: UUID) -> Customer:
    """
    Block a customer: no new tokens; every context stops accepting the ones
    they hold and orders cancels their running checkouts (`user.blocked`).
    """
    with transaction.atomic(using=ALIAS):
        customer = _locked(customer_id)
        if customer.status != Customer.Status.BLOCKED:
            customer.status = Customer.Status.BLOCKED
            customer.save(update_fields=["status", "updated_at"])
            _revoke_refresh_tokens(customer)
            revocations.revoke(customer.id, alias=ALIAS, reason=users.USER_BLOCKED.name)
            publish(users.USER_BLOCKED, {"customer_id": customer.id})
    return customer


# --- deletion -------------------------------------------------------------------------


def customer_delete(*, customer_id: UUID, password: str | None = None) -> None:
    """
    Delete a customer: the customer's own request (their password asked
    again) or an operator's (no password). The row goes, `user.deleted` tells
    every other context to forget them, and what this context published
    about them (their name, address and verification tokens) is redacted in
    its event log, so a replay does not bring them back.
    """
    if password is not None:
        _check_own_password(customer_id, password, "The password is wrong.")
    with transaction.atomic(using=ALIAS):
        customer = _locked(customer_id)
        customer.delete()
        revocations.revoke(customer_id, alias=ALIAS, reason=users.USER_DELETED.name)
        publish(users.USER_DELETED, {"customer_id": customer_id, "deleted_at": timezone.now()})
        redact(
            ALIAS,
            type_prefix="user.",
            match={"customer_id": str(customer_id)},
            replace=erased_fields(customer_id),
        )
