"""Persisted saga instances and their step log; both exist in every context alias."""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone


class SagaInstance(models.Model):
    class State(models.TextChoices):
        RUNNING = "running", "running"
        COMPENSATING = "compensating", "compensating"
        COMPLETED = "completed", "completed"
        COMPENSATED = "compensated", "compensated"
        FAILED = "failed", "failed"

    FINAL_STATES = (State.COMPLETED, State.COMPENSATED, State.FAILED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    saga_type = models.CharField(max_length=120, db_index=True)
    context = models.CharField(max_length=60)
    state = models.CharField(
        max_length=16, choices=State.choices, default=State.RUNNING, db_index=True
    )
    current_step = models.PositiveIntegerField(default=0)
    data = models.JSONField(default=dict)
    failure_reason = models.CharField(max_length=120, blank=True, default="")
    correlation_id = models.CharField(max_length=128, db_index=True)
    lease_owner = models.CharField(max_length=120, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    # The driving process renews its lease at every step boundary; the last
    # renewal shows operators whether a running saga is alive.
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    # A reason asked for from outside (a customer cancelling, an operator
    # refunding): the driver compensates with it at the next step boundary.
    cancel_requested = models.CharField(max_length=120, blank=True, default="")
    deadline = models.DateTimeField(null=True, blank=True)
    # A step or compensation that met a technical failure waits until then
    # (no process holds the saga meanwhile); `last_error` says what it met.
    wake_at = models.DateTimeField(null=True, blank=True, db_index=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    # The trace that started the saga: every step's span is its child, whichever
    # process drives the step and however much later.
    traceparent = models.CharField(max_length=128, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        app_label = "cleave"
        ordering = ["-created_at"]
        verbose_name = "saga instance"

    def __str__(self) -> str:
        return f"{self.saga_type} {self.id} ({self.state})"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class SagaStepLog(models.Model):
    class Kind(models.TextChoices):
        ACTION = "action", "action"
        QUERY = "query", "query"
        COMPENSATION = "compensation", "compensation"

    class Status(models.TextChoices):
        STARTED = "started", "started"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"
        ERROR = "error", "error"
        TIMEOUT = "timeout", "timeout"
        # a technical failure: the participant was unavailable (the call may
        # have taken effect, so the step stays in doubt until it succeeds)
        UNAVAILABLE = "unavailable", "unavailable"

    id = models.BigAutoField(primary_key=True)
    saga = models.ForeignKey(SagaInstance, on_delete=models.CASCADE, related_name="steps")
    step_index = models.PositiveIntegerField()
    step = models.CharField(max_length=120)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    attempt = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices)
    idempotency_key = models.CharField(max_length=255, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)

    class Meta:
        app_label = "cleave"
        ordering = ["saga", "id"]
        verbose_name = "saga step"

    def __str__(self) -> str:
        return f"{self.step} {self.kind} #{self.attempt}: {self.status}"
