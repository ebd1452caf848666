"""
The event bus tables. All of them exist in every context alias.

An `OutboxEvent` is written in the publisher's business transaction and is that
context's event log: rows are kept after delivery (until `events prune`) so
read models can be rebuilt by replay. An `InboxRecord` is written in the
subscriber's transaction together with the handler's effect, so a redelivered
event has no second effect. A `Delivery` tracks one handler's failed attempts
at one event (backoff, next attempt) and a `DeadLetter` keeps an event a
handler gave up on, with the error, until an operator redrives it. Deliveries
and dead letters live in the subscriber's alias.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from cleave.messaging.envelope import Envelope


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
    # relay attempts (in-process: hand-overs to the local handlers) and the
    # last broker error; handler failures are tracked by `Delivery`
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    # the Redis server (run_id) that accepted the message: a restarted Redis
    # without persistence lost it, so the relay publishes it again
    broker_epoch = models.CharField(max_length=64, blank=True, default="")

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
        # `events prune` deletes the old ones: without it, a scan of every record
        indexes = [models.Index(fields=["processed_at"], name="cleave_inbox_processed")]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.handler}"


class Delivery(models.Model):
    """
    One handler's failed attempts at one event, in the subscriber's alias.

    Written only when a handler fails: a first-time success leaves just the
    inbox record. `retrying` waits for `next_attempt_at` (exponential backoff
    with jitter); `dead` gave up (see `DeadLetter`); `applied` succeeded at a
    later attempt or after a redrive.
    """

    class Status(models.TextChoices):
        RETRYING = "retrying", "retrying"
        APPLIED = "applied", "applied"
        DEAD = "dead", "dead"

    id = models.BigAutoField(primary_key=True)
    event_id = models.UUIDField()
    handler = models.CharField(max_length=255)
    context = models.CharField(max_length=60)
    event_type = models.CharField(max_length=120, db_index=True)
    source = models.CharField(max_length=60)
    envelope = models.JSONField()
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.RETRYING, db_index=True
    )
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        app_label = "cleave"
        ordering = ["-updated_at"]
        verbose_name_plural = "deliveries"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="cleave_delivery_once")
        ]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="cleave_delivery_due"),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.handler} ({self.status})"

    def get_envelope(self) -> Envelope:
        return Envelope.from_dict(self.envelope)


class DeadLetter(models.Model):
    """An event a handler gave up on, kept with its error until it is redriven."""

    class Reason(models.TextChoices):
        HANDLER_FAILED = "handler_failed", "handler failed every attempt"
        INVALID_PAYLOAD = "invalid_payload", "payload fails the schema"
        MALFORMED = "malformed", "not an event envelope"
        UNKNOWN_HANDLER = "unknown_handler", "handler no longer exists"

    class Status(models.TextChoices):
        DEAD = "dead", "dead"
        REDRIVEN = "redriven", "redriven"
        RESOLVED = "resolved", "resolved"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    event_id = models.UUIDField()
    handler = models.CharField(max_length=255, blank=True, default="")
    context = models.CharField(max_length=60)
    event_type = models.CharField(max_length=120, db_index=True)
    source = models.CharField(max_length=60, blank=True, default="")
    correlation_id = models.CharField(max_length=128, blank=True, default="", db_index=True)
    envelope = models.JSONField()
    reason = models.CharField(max_length=32, choices=Reason.choices)
    error = models.TextField(blank=True, default="")
    traceback = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DEAD, db_index=True
    )
    dead_at = models.DateTimeField(default=timezone.now, db_index=True)
    redriven_at = models.DateTimeField(null=True, blank=True)
    redrive_count = models.PositiveIntegerField(default=0)

    class Meta:
        app_label = "cleave"
        ordering = ["-dead_at"]
        verbose_name = "dead letter"
        constraints = [
            models.UniqueConstraint(fields=["event_id", "handler"], name="cleave_deadletter_once")
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id} → {self.handler or '?'} ({self.status})"
