"""
Write side of the notifications context.

Notifications are stored first and sent after the storing transaction commits
(`transaction.on_commit`), so a rolled-back handler never sends mail. Mail goes
out through Django's email backend; delivery is at-least-once.
"""

from __future__ import annotations

import logging
from functools import partial
from uuid import UUID

from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave.core.errors import NotFound

from .apps import ALIAS
from .models import Notification, Recipient

NO_RECIPIENT = "no recipient"

logger = logging.getLogger(__name__)


def _send_after_commit(
    notifications: list[Notification], recipient: Recipient | None = None
) -> None:
    for notification in notifications:
        transaction.on_commit(
            partial(_send, notification, recipient),
            using=ALIAS,
            robust=True,  # a failed send is logged, not raised into the committing caller
        )


def _locked_recipient(customer_id: UUID) -> Recipient | None:
    return Recipient.objects.select_for_update().filter(pk=customer_id).first()


def recipient_upsert(
    *, customer_id: UUID, email: str, name: str, verified: bool | None = None
) -> Recipient | None:
    """
    Record where to write to a customer (`verified`: whether the address is
    proven; None leaves it as it is, a new address is unproven).

    Notifications that arrived before the customer was known are sent once
    this commits. An erased customer stays erased: None.
    """
    with transaction.atomic(using=ALIAS):
        recipient = _locked_recipient(customer_id)
        if recipient is not None and recipient.erased_at is not None:
            return None
        if recipient is None:
            recipient = Recipient(customer_id=customer_id)
        elif recipient.email != email:
            recipient.verified_at = None
        recipient.email, recipient.name = email, name
        if verified is not None:
            recipient.verified_at = (recipient.verified_at or timezone.now()) if verified else None
        recipient.save()
        waiting = list(
            Notification.objects.filter(customer_id=customer_id, status=Notification.Status.PENDING)
        )
        _send_after_commit(waiting)
    return recipient


def recipient_verified(*, customer_id: UUID, email: str) -> Recipient | None:
    """
    The customer proved `email`: the recipient says so (if that is still its
    address), and verification mails not yet sent are cancelled.
    """
    with transaction.atomic(using=ALIAS):
        recipient = _locked_recipient(customer_id)
        if recipient is None or recipient.erased_at is not None or recipient.email != email:
            return recipient
        if recipient.verified_at is None:
            recipient.verified_at = timezone.now()
            recipient.save(update_fields=["verified_at"])
        Notification.objects.filter(
            customer_id=customer_id,
            kind=Notification.Kind.VERIFY_EMAIL,
            status__in=(Notification.Status.PENDING, Notification.Status.FAILED),
        ).update(status=Notification.Status.CANCELLED, error="the address is verified")
    return recipient


def recipient_erase(*, customer_id: UUID) -> None:
    """
    Forget a deleted customer: the recipient becomes a tombstone without
    address or name, their notifications lose address, subject and body
    (kind, status and times stay, for the counts), and nothing more is sent.
    """
    now = timezone.now()
    with transaction.atomic(using=ALIAS):
        Recipient.objects.update_or_create(
            customer_id=customer_id,
            defaults={"email": "", "name": "", "verified_at": None, "erased_at": now},
        )
        mine = Notification.objects.filter(customer_id=customer_id)
        mine.exclude(status=Notification.Status.SENT).update(
            status=Notification.Status.CANCELLED, error="the customer was deleted"
        )
        mine.update(address="", subject="(erased)", body="")


def notification_create(
    *,
    event_id: UUID,
    customer_id: UUID,
    kind: str,
    subject: str,
    body: str,
    recipient: Recipient | None = None,
    address: str = "",
) -> tuple[Notification, bool]:
    """
    Store the notification of `kind` for one event and send it after commit.

    One event gives at most one notification of a kind: a repeat returns the
    stored one and sends nothing. `recipient`: the customer's address, when
    the caller has just read it (else it is read when sending); `address`:
    where to send it instead (a verification mail goes to the address it
    verifies).
    """
    with transaction.atomic(using=ALIAS, savepoint=False):
        try:
            # insert first: the unique (event, kind) key refuses a repeat
            with transaction.atomic(using=ALIAS):
                notification = Notification.objects.create(
                    event_id=event_id,
                    kind=kind,
                    customer_id=customer_id,
                    channel=Notification.Channel.EMAIL,
                    address=address,
                    subject=subject[:255],
                    body=body,
                )
        except IntegrityError:
            return Notification.objects.get(event_id=event_id, kind=kind), False
        _send_after_commit([notification], recipient)
    return notification, True


def notification_send(*, notification_id: UUID) -> Notification:
    """
    Send a notification that has not been sent yet, and record the outcome.

    Without a known recipient it stays pending (`recipient_upsert` sends it
    later); a mail failure marks it failed with the error. Never raises for a
    delivery problem.
    """
    notification = Notification.objects.filter(pk=notification_id).first()
    if notification is None:
        raise NotFound(f"No notification {notification_id}.")
    return _send(notification)


def _send(notification: Notification, recipient: Recipient | None = None) -> Notification:
    if notification.status in (Notification.Status.SENT, Notification.Status.CANCELLED):
        return notification
    unsent = Notification.objects.filter(pk=notification.pk).exclude(
        status__in=(Notification.Status.SENT, Notification.Status.CANCELLED)
    )
    if recipient is None:
        recipient = Recipient.objects.filter(pk=notification.customer_id).first()
    stop = _why_not_send(notification, recipient)
    if stop:
        with transaction.atomic(using=ALIAS):
            unsent.update(status=Notification.Status.CANCELLED, error=stop)
        notification.status, notification.error = Notification.Status.CANCELLED, stop
        return notification
    if recipient is None:
        with transaction.atomic(using=ALIAS):
            unsent.update(error=NO_RECIPIENT)
        notification.error = NO_RECIPIENT
        return notification
    try:
        send_mail(
            notification.subject,
            notification.body,
            settings.DEFAULT_FROM_EMAIL,
            [notification.address or recipient.email],
            fail_silently=False,
        )
    except Exception as exc:  # any backend failure (SMTP, file system) is recorded
        logger.warning("Sending notification %s failed: %s", notification.pk, exc)
        outcome = {"status": Notification.Status.FAILED, "error": f"{type(exc).__name__}: {exc}"}
    else:
        outcome = {"status": Notification.Status.SENT, "sent_at": timezone.now(), "error": ""}
    with transaction.atomic(using=ALIAS):
        recorded = unsent.update(**outcome)
    if recorded:
        for name, value in outcome.items():
            setattr(notification, name, value)
    else:  # sent meanwhile by another delivery
        notification.refresh_from_db()
    return notification


def _why_not_send(notification: Notification, recipient: Recipient | None) -> str:
    """Why a notification must never go out now (empty: it may)."""
    if recipient is not None and recipient.erased_at is not None:
        return "the customer was deleted"
    if notification.kind == Notification.Kind.VERIFY_EMAIL and recipient is not None:
        if recipient.email != notification.address:
            return "the address is no longer the customer's"
        if recipient.verified_at is not None:
            return "the address is verified"
    return ""
