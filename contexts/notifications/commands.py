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

from cleave.api import NotFound

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


def recipient_upsert(*, customer_id: UUID, email: str, name: str) -> Recipient:
    """
    Record where to write to a customer.

    Notifications that arrived before the customer was known are sent once
    this commits.
    """
    with transaction.atomic(using=ALIAS):
        recipient, _ = Recipient.objects.using(ALIAS).update_or_create(
            customer_id=customer_id, defaults={"email": email, "name": name}
        )
        waiting = list(
            Notification.objects.using(ALIAS).filter(
                customer_id=customer_id, status=Notification.Status.PENDING
            )
        )
        _send_after_commit(waiting)
    return recipient


def notification_create(
    *,
    event_id: UUID,
    customer_id: UUID,
    kind: str,
    subject: str,
    body: str,
    recipient: Recipient | None = None,
) -> tuple[Notification, bool]:
    """
    Store the notification of `kind` for one event and send it after commit.

    One event gives at most one notification of a kind: a repeat returns the
    stored one and sends nothing. `recipient`: the customer's address, when
    the caller has just read it (else it is read when sending).
    """
    with transaction.atomic(using=ALIAS, savepoint=False):
        try:
            # insert first: the unique (event, kind) key refuses a repeat
            with transaction.atomic(using=ALIAS):
                notification = Notification.objects.using(ALIAS).create(
                    event_id=event_id,
                    kind=kind,
                    customer_id=customer_id,
                    channel=Notification.Channel.EMAIL,
                    subject=subject[:255],
                    body=body,
                )
        except IntegrityError:
            return Notification.objects.using(ALIAS).get(event_id=event_id, kind=kind), False
        _send_after_commit([notification], recipient)
    return notification, True


def notification_send(*, notification_id: UUID) -> Notification:
    """
    Send a notification that has not been sent yet, and record the outcome.

    Without a known recipient it stays pending (`recipient_upsert` sends it
    later); a mail failure marks it failed with the error. Never raises for a
    delivery problem.
    """
    notification = Notification.objects.using(ALIAS).filter(pk=notification_id).first()
    if notification is None:
        raise NotFound(f"No notification {notification_id}.")
    return _send(notification)


def _send(notification: Notification, recipient: Recipient | None = None) -> Notification:
    if notification.status == Notification.Status.SENT:
        return notification
    unsent = (
        Notification.objects.using(ALIAS)
        .filter(pk=notification.pk)
        .exclude(status=Notification.Status.SENT)
    )
    if recipient is None:
        recipient = Recipient.objects.using(ALIAS).filter(pk=notification.customer_id).first()
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
            [recipient.email],
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
        notification.refresh_from_db(using=ALIAS)
    return notification
