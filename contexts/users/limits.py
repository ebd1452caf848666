"""
How often credentials may be tried, and verification mail asked for.

Sign-in (`POST /api/users/token`) is counted per account from an address
(`CLEAVE_SIGNIN_FAILURES` in `CLEAVE_SIGNIN_WINDOW` seconds) and per address
(`CLEAVE_SIGNIN_ADDRESS_FAILURES`), the account being the normalised email
as given: an address that exists and one that does not are counted, and
refused, alike. The address budget also takes the refreshes that fail and
the registrations answered "already exists" (an oracle of who is a
customer), and the wrong passwords given to confirm a change. Past a limit
the answer is 429 problem details with `Retry-After`, the right password
included, until the window ends. An account is never locked for every
address: an attacker locks only the pair they try from, for one short
window, and the owner signs in from elsewhere. Verification mail is
counted per customer (`CLEAVE_THROTTLE_VERIFY_RESEND`).

Each sign-in, and each password asked again, is counted before the
password is checked (so parallel guesses cannot all pass the check) and
given back when it succeeds; registrations and refreshes, where nothing is
guessed, are checked first and counted only when they fail. The
counts are rows of the users alias (`AttemptCount`), so every process and
replica serving users shares them, with or without a shared cache; fixed
windows, one row per subject. Written by hand: DRF's throttles count
requests, not failures, and django-axes knows only Django's own users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from cleave.core import db
from cleave.core.errors import ApplicationError, Throttled

from .apps import ALIAS
from .models import AttemptCount

# the periods of a rate (`3/hour`) as cleave.env reads them, in seconds
_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Counter:
    """One subject's attempts of one kind: at most `limit` in a window of `window` seconds."""

    key: str
    limit: int
    window: int


def _counter(kind: str, subject: str, limit: int, window: int) -> Counter:
    digest = salted_hmac("contexts.users.limits", f"{kind}\0{subject}", algorithm="sha256")
    return Counter(key=digest.hexdigest(), limit=limit, window=window)


def _address(address: str) -> Counter:
    return _counter(
        "address",
        address,
        settings.CLEAVE_SIGNIN_ADDRESS_FAILURES,
        settings.CLEAVE_SIGNIN_WINDOW,
    )


def _account(account: str, address: str) -> Counter:
    return _counter(
        "account",
        f"{account}\0{address}",
        settings.CLEAVE_SIGNIN_FAILURES,
        settings.CLEAVE_SIGNIN_WINDOW,
    )


def _refuse(waits: list[float], detail: str) -> None:
    if waits:
        # the wait becomes `Retry-After`; the detail says no number, so that it
        # reads the same for any window
        raise Throttled(detail, retry_after=max(waits))


def check(counters: list[Counter], *, detail: str) -> None:
    """Raise Throttled when a counter has reached its limit; count nothing (no write)."""
    now = timezone.now()
    rows = AttemptCount.objects.filter(pk__in=[c.key for c in counters], expires_at__gt=now)
    found = {row.key: row for row in rows}
    _refuse(
        [
            (found[c.key].expires_at - now).total_seconds()
            for c in counters
            if c.key in found and found[c.key].count >= c.limit
        ],
        detail,
    )


def take(counters: list[Counter], *, detail: str) -> None:
    """
    Count one attempt against each counter; raise Throttled (with the
    seconds to wait) when one of them is past its limit.
    """
    _refuse(_count(counters), detail)  # after the commit: the attempt stays counted


def _count(counters: list[Counter]) -> list[float]:
    """Count one attempt against each counter; the seconds to wait for those past their limit."""
    now = timezone.now()
    waits: list[float] = []
    with transaction.atomic(using=ALIAS):
        AttemptCount.objects.filter(expires_at__lte=now).delete()
        for counter in sorted(counters, key=lambda c: c.key):  # one order: no deadlock
            expires_at = now + timedelta(seconds=counter.window)
            inserted = db.insert(
                AttemptCount,
                ALIAS,
                {"key": counter.key, "count": 1, "expires_at": expires_at},
                ignore_conflicts=True,
            )
            if inserted:
                count = 1
            else:
                row = AttemptCount.objects.select_for_update().get(pk=counter.key)
                if row.expires_at <= now:  # the window ended: a new one starts
                    row.count, row.expires_at = 0, expires_at
                row.count += 1
                row.save(update_fields=["count", "expires_at"])
                count, expires_at = row.count, row.expires_at
            if count > counter.limit:
                waits.append((expires_at - now).total_seconds())
    return waits


def give_back(counters: list[Counter], *, clear: tuple[Counter, ...] = ()) -> None:
    """The attempt did not fail: it no longer counts; the counts of `clear` start again."""
    now = timezone.now()
    with transaction.atomic(using=ALIAS):
        AttemptCount.objects.filter(pk__in=[c.key for c in clear]).delete()
        for counter in sorted(set(counters) - set(clear), key=lambda c: c.key):
            row = (
                AttemptCount.objects.select_for_update()
                .filter(pk=counter.key, expires_at__gt=now, count__gt=0)
                .first()
            )
            if row is not None:
                row.count -= 1
                row.save(update_fields=["count"])


@contextmanager
def _counted(
    counters: list[Counter],
    detail: str,
    *,
    failed: Callable[[BaseException], bool],
    success_clears: tuple[Counter, ...] = (),
    success_counts: bool = False,
    count_failures_only: bool = False,
) -> Iterator[None]:
    """
    Count an attempt for the block. An error `failed` names keeps it counted,
    any other is given back; so is a success (unless `success_counts`), which
    also starts the counts of `success_clears` again.

    With `count_failures_only`, the block is refused at the limit and only a
    failure is counted, after it: no write for the attempts that succeed,
    where no guess is at stake (a registration).
    """
    if count_failures_only:
        check(counters, detail=detail)
        try:
            yield
        except BaseException as exc:
            if failed(exc):
                _count(counters)
            raise
        return
    take(counters, detail=detail)
    try:
        yield
    except BaseException as exc:
        if not failed(exc):
            give_back(counters)
        raise
    if not success_counts:
        give_back(counters, clear=success_clears)


def _refused(*codes: str) -> Callable[[BaseException], bool]:
    return lambda exc: isinstance(exc, ApplicationError) and exc.code in codes


SIGN_IN_REFUSED = "Too many failed attempts from this address or for this account; try again later."
MAIL_REFUSED = "Too many verification mails asked for; try again later."


def sign_in(*, account: str, address: str):
    """
    A sign-in with `account` (the normalised email) from `address`; failures
    count, and a success starts the count of that account from there again.
    """
    pair = _account(account, address)
    return _counted(
        [pair, _address(address)],
        SIGN_IN_REFUSED,
        failed=_refused("invalid-credentials"),
        success_clears=(pair,),
    )


def refresh(*, address: str):
    """A refresh from `address`; a refused refresh token counts against the address."""
    refused = _refused("invalid-credentials", "refresh-token-reused")
    # a refresh token is signed: nothing is guessed in parallel, only failures count
    return _counted([_address(address)], SIGN_IN_REFUSED, failed=refused, count_failures_only=True)


def registration(*, address: str):
    """A registration from `address`; "already exists" counts against the address."""
    return _counted(
        [_address(address)],
        SIGN_IN_REFUSED,
        failed=_refused("email-taken"),
        count_failures_only=True,
    )


def own_password(*, customer_id: object, address: str):
    """A signed-in customer's password asked again; a wrong one counts like a failed sign-in."""
    counters = [_account(f"customer:{customer_id}", address), _address(address)]
    return _counted(counters, SIGN_IN_REFUSED, failed=_refused("wrong-password"))


def verification_mail(*, customer_id: object):
    """A verification mail a customer asks for: each counts (`CLEAVE_THROTTLE_VERIFY_RESEND`)."""
    number, _, period = settings.CLEAVE_THROTTLE_VERIFY_RESEND.partition("/")
    counter = _counter("verification-mail", str(customer_id), int(number), _PERIODS[period[0]])
    return _counted([counter], MAIL_REFUSED, failed=lambda exc: False, success_counts=True)
