import uuid

from django.db import models
from django.utils import timezone


class Recipient(models.Model):
    """Where to write to a customer: a local projection of `user.created`."""

    customer_id = models.UUIDField(primary_key=True)
    email = models.EmailField(max_length=254)
    name = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.email


class Notification(models.Model):
    """One message to one customer, caused by one event."""

    class Kind(models.TextChoices):
        WELCOME = "welcome", "welcome"
        ORDER_CONFIRMED = "order_confirmed", "order confirmed"
        ORDER_CANCELLED = "order_cancelled", "order cancelled"

    class Channel(models.TextChoices):
        EMAIL = "email", "email"

    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        SENT = "sent", "sent"
        FAILED = "failed", "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField(db_index=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.EMAIL)
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
