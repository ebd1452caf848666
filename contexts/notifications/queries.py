"""Read side of the notifications context."""

from __future__ import annotations

from uuid import UUID

from django.db.models import QuerySet

from .models import Notification, Recipient


def notification_list(*, customer_id: UUID) -> QuerySet[Notification]:
    """A customer's own notifications, newest first."""
    return Notification.objects.filter(customer_id=customer_id).order_by("-created_at", "-id")


def recipient_get(*, customer_id: UUID) -> Recipient | None:
    """Where to write to a customer, or None before they are known here."""
    return Recipient.objects.filter(pk=customer_id).first()
