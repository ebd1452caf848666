"""
Customer tokens that stop working before they expire.

A customer's access token is a JWT that every context verifies on its own,
without asking the users context: that is what lets a context serve requests
while users is down. The price is that blocking or deleting a customer would
leave their tokens valid until they expire (15 minutes). So each context that
serves customers subscribes to the users context's `user.blocked` and
`user.deleted` and records a revocation in its own alias (`revoke()`), and
`cleave.auth.authentication.CustomerAuthentication` refuses a token issued before the
revocation, in the alias of the context the request is for. The delay is
that of the event: nothing in process, the relay's in a split (milliseconds);
the users context records its own revocations in the same transaction as
the change, so its endpoints refuse the tokens at once.

A password change revokes too (`user.password_changed`), and hands the
customer a new pair issued at the revocation's very instant: "before" is
strict, and the instant is the one the event names (`changed_at`, to the
millisecond, as customer tokens carry `iat`), never when the event was
handled, or the new pair would be refused wherever the event came later.

A table of the platform's, in every context alias, like the inbox.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from cleave.core import db


class Event(Protocol):
    """What `revoke_for` reads of an event envelope (the event package sits above this module)."""

    type: str
    data: dict[str, Any]

    def occurred_at(self) -> datetime: ...


class TokenRevocation(models.Model):
    """Every token of `subject` issued before `revoked_at` is refused."""

    subject = models.CharField(max_length=64, primary_key=True)
    revoked_at = models.DateTimeField()
    reason = models.CharField(max_length=64)  # the event that revoked them

    class Meta:
        app_label = "cleave"

    def __str__(self) -> str:
        return f"tokens of {self.subject} revoked ({self.reason})"


def revoke(subject: Any, *, alias: str, reason: str, at: datetime | None = None) -> None:
    """Refuse `subject`'s tokens issued until `at` (now) in `alias`; a later revocation wins."""
    at = at or timezone.now()
    with transaction.atomic(using=alias):
        existing = (
            TokenRevocation.objects.using(alias).select_for_update().filter(pk=str(subject)).first()
        )
        if existing is None:
            db.insert(
                TokenRevocation,
                alias,
                {"subject": str(subject), "revoked_at": at, "reason": reason[:64]},
                ignore_conflicts=True,
            )
        elif existing.revoked_at < at:
            existing.revoked_at, existing.reason = at, reason[:64]
            existing.save(using=alias, update_fields=["revoked_at", "reason"])


def revoke_for(
    event: Event, *, alias: str, subject_key: str = "customer_id", at_key: str | None = None
) -> None:
    """
    The handler's part: refuse the tokens of the event's subject
    (`data[subject_key]`) issued before the instant the event names
    (`data[at_key]`) or, without one, before the event happened; the
    event's type is the reason (`user.blocked`).
    """
    at = parse_datetime(event.data[at_key]) if at_key else event.occurred_at()
    if at is None:
        raise ValueError(f"{event.type}: {at_key} is not a date and time")
    revoke(event.data[subject_key], alias=alias, reason=event.type, at=at)


def is_revoked(subject: Any, issued_at: int | float, *, alias: str) -> bool:
    """Whether a token of `subject` issued at `issued_at` (a Unix time) was revoked in `alias`."""
    revoked_at = (
        TokenRevocation.objects.using(alias)
        .filter(pk=str(subject))
        .values_list("revoked_at", flat=True)
        .first()
    )
    return revoked_at is not None and issued_at < revoked_at.timestamp()
