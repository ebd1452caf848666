import uuid

from django.db import models
from django.utils import timezone


class Recipient(models.Model):
    """
    Where to write to a customer: a local projection of `user.created` and
    `user.updated`, `user.verified` saying the address is proven. A deleted
    customer's row stays as a tombstone (`erased_at`, no address, no name),
    so that nothing (a late event, a replay) brings the address back.
    """

    customer_id = models.UUIDField(primary_key=True)
    email = models.EmailField(max_length=254, blank=True)
    name = models.CharField(max_length=200, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    erased_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email


class Notification(models.Model):
    """One message to one customer, caused by one event."""

    class Kind(models.TextChoices):
        WELCOME = "welcome", "welcome"
        VERIFY_EMAIL = "verify_email", "verify email address"
        EMAIL_CHANGED = "email_changed", "email address changed"
        ORDER_CONFIRMED = "order_confirmed", "order confirmed"
        ORDER_CANCELLED = "order_cancelled", "order cancelled"

    class Channel(models.TextChoices):
        EMAIL = "email", "email"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"
        # not sent, and never will be: the customer was deleted, or the
        # address to verify is verified or no longer theirs
        CANCELLED = "cancelled", "cancelled"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
    # the address to write to, when it is not the recipient's current one (a
    # verification mail goes to the address it verifies)
    address = models.EmailField(max_length=254, blank=True, default="")
    subject = models.CharField(max_length=255)
    body = models.TextField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    error = models.TextField(blank=True, default="")
    event_id = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["event_id", "kind"], name="notifications_one_kind_per_event"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} to {self.customer_id} ({self.status})"
