"""
The outbox and inbox tables. Both exist in every context alias.

An `OutboxEvent` is written in the publisher's business transaction and is that
context's event log: rows are kept after delivery so read models can be rebuilt
by replay. An `InboxRecord` is written in the subscriber's transaction together
with the handler's effect, so a redelivered event has no second effect.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from .envelope import Envelope


class OutboxEvent(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        PUBLISHED = "published", "published"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    type = models.CharField(max_length=120, db_index=True)
    version = models.PositiveIntegerField(default=1)
    source = models.CharField(max_length=60)
    data = models.JSONField()
    correlation_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    causation_id = models.CharField(max_length=128, blank=True, default="")
    traceparent = models.CharField(max_length=128, blank=True, default="")
    occurred_at = models.DateTimeField(default=timezone.now, db_index=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    published_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")

    class Meta:
        app_label = "cleave"
        ordering = ["occurred_at", "id"]
        verbose_name = "outbox event"
        indexes = [models.Index(fields=["status", "occurred_at"], name="cleave_outbox_pending")]

    def __str__(self) -> str:
        return f"{self.type} {self.id}"

    def envelope(self) -> Envelope:
        return Envelope(
            id=str(self.id),
            type=self.type,
            version=self.version,
            source=self.source,
            timestamp=self.occurred_at.isoformat(),
            data=self.data,
            correlation_id=self.correlation_id or None,
            causation_id=self.causation_id or None,
            traceparent=self.traceparent or None,
        )


class InboxRecord(models.Model):
    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    handler = models.CharField(max_length=255)
    event_type = models.CharField(max_length=120)
    source = models.CharField(max_length=60)
    processed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "cleave"
        verbose_name = "inbox record"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="cleave_inbox_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.handler}"
