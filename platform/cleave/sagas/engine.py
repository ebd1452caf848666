"""
Durable orchestrated sagas, written by hand: no library persists sagas per
context alias with a step log, leases and compensation the way this project needs.

A `SagaDefinition` is an ordered list of `Step`s. An instance is persisted in
its owning context's alias; after each step its result is stored before the
next step begins, so a crashed process leaves a record another process can pick
up (`resume`). A step raises `StepFailed(reason)` when a participant refuses;
any other exception is retried with exponential backoff and jitter, then counts
as a failure. On failure the completed steps are compensated in reverse order.
Each step call gets an idempotency key derived from the saga id and the step
name, which participants honour, so re-running a step never repeats its effect.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from cleave import flow, observability
from cleave.contexts import alias_for

from .models import SagaInstance, SagaStepLog

logger = logging.getLogger(__name__)


class StepFailed(Exception):
    """A participant refused the step; the saga compensates with `reason`."""

    def __init__(
        self, reason: str, detail: str = "", *, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail
        self.data = data or {}


class SagaContext:
    """What a step sees: the saga's id, its accumulated data and correlation id."""

    def __init__(self, instance: SagaInstance) -> None:
        self.instance = instance
        self.id: UUID = instance.id
        self.data: dict[str, Any] = dict(instance.data)
        self.correlation_id = instance.correlation_id
        self.failure_reason = instance.failure_reason

    def idempotency_key(self, step: str) -> str:
        return f"saga:{self.id}:{step}"


StepFn = Callable[[SagaContext], dict[str, Any] | None]


@dataclass(frozen=True)
class Step:
    name: str
    action: StepFn
    compensation: StepFn | None = None
    retries: int = 2
    timeout: float | None = None
    error_reason: str | None = None


@dataclass(frozen=True)
class SagaDefinition:
    name: str
    context: str
    steps: tuple[Step, ...]
    deadline: timedelta | None = None
    error_reason: str = "error"
    compensation_retries: int = 5
    on_finished: StepFn | None = field(default=None)

    def step_index(self, name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise LookupError(name)


_definitions: dict[str, SagaDefinition] = {}


def register(definition: SagaDefinition) -> SagaDefinition:
    _definitions[definition.name] = definition
    return definition


def get_definition(name: str) -> SagaDefinition:
    try:
        return _definitions[name]
    except KeyError:
        raise LookupError(f"No saga definition named {name!r}") from None


def definitions() -> list[SagaDefinition]:
    return list(_definitions.values())


# --- starting and running -------------------------------------------------------


def start(name: str, *, data: dict[str, Any], correlation_id: str | None = None) -> SagaInstance:
    """
    Create a saga instance in the owning context's alias, in the caller's
    transaction; it starts running after that transaction commits.
    """
    definition = get_definition(name)
    alias = alias_for(definition.context)
    now = timezone.now()
    instance = SagaInstance.objects.using(alias).create(
        saga_type=name,
        context=definition.context,
        data=data,
        correlation_id=correlation_id or flow.correlation_id(),
        deadline=now + definition.deadline if definition.deadline else None,
    )
    runner = get_runner()
    transaction.on_commit(lambda: runner.schedule(alias, instance.id), using=alias)
    return instance


class InProcessRunner:
    """Run a saga in the current process right after its creating transaction commits."""

    def schedule(self, alias: str, saga_id: UUID) -> None:
        try:
            run(alias, saga_id)
        except Exception:  # the saga stays leased; recovery resumes it
            logger.exception("Saga %s stopped with an unexpected error", saga_id)


def get_runner() -> InProcessRunner:
    return InProcessRunner()


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _lease_seconds() -> int:
    return int(getattr(settings, "CLEAVE_SAGA_LEASE_SECONDS", 30))


def acquire(alias: str, saga_id: UUID, owner: str) -> bool:
    """Take the saga's lease unless a live process holds it."""
    now = timezone.now()
    taken = (
        SagaInstance.objects.using(alias)
        .filter(pk=saga_id)
        .exclude(state__in=SagaInstance.FINAL_STATES)
        .filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner)
        )
        .update(lease_owner=owner, lease_expires_at=now + timedelta(seconds=_lease_seconds()))
    )
    return taken == 1


def run(alias: str, saga_id: UUID) -> SagaInstance:
    """Drive one saga as far as it goes now; return its persisted state."""
    owner = _owner()
    if not acquire(alias, saga_id, owner):
        return SagaInstance.objects.using(alias).get(pk=saga_id)
    instance = SagaInstance.objects.using(alias).get(pk=saga_id)
    definition = get_definition(instance.saga_type)
    with flow.flow(correlation_id=instance.correlation_id, causation_id=str(instance.id)):
        while not instance.is_final:
            if instance.state == SagaInstance.State.RUNNING:
                instance = _run_next_action(alias, definition, instance, owner)
            elif instance.state == SagaInstance.State.COMPENSATING:
                instance = _run_next_compensation(alias, definition, instance, owner)
            else:  # pragma: no cover - states are closed
                break
    SagaInstance.objects.using(alias).filter(pk=saga_id, lease_owner=owner).update(
        lease_owner="", lease_expires_at=None
    )
    instance.refresh_from_db(using=alias)
    return instance


def _backoff(attempt: int) -> float:
    base = float(getattr(settings, "CLEAVE_SAGA_RETRY_BASE", 0.05))
    return base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter


def _log_start(alias: str, instance: SagaInstance, index: int, step: Step, kind: str, attempt: int):
    return SagaStepLog.objects.using(alias).create(
        saga=instance,
        step_index=index,
        step=step.name,
        kind=kind,
        attempt=attempt,
        status=SagaStepLog.Status.STARTED,
    )


def _finish_log(log: SagaStepLog, status: str, *, result=None, error: str = "") -> None:
    log.status = status
    log.result = result
    log.error = error[:20000]
    log.finished_at = timezone.now()
    log.duration_ms = (log.finished_at - log.started_at).total_seconds() * 1000


def _call(fn: StepFn, instance: SagaInstance) -> dict[str, Any]:
    ctx = SagaContext(instance)
    with observability.tracer().start_as_current_span(
        f"saga {instance.saga_type} {fn.__name__}",
        attributes={"cleave.saga_id": str(instance.id), "cleave.step": fn.__name__},
    ):
        return fn(ctx) or {}


def _run_next_action(alias: str, definition: SagaDefinition, instance: SagaInstance, owner: str):
    index = instance.current_step
    if index >= len(definition.steps):
        return _finish(alias, definition, instance, SagaInstance.State.COMPLETED, owner)
    step = definition.steps[index]
    if instance.deadline and timezone.now() > instance.deadline:
        return _begin_compensation(alias, instance, index, "timeout", "saga deadline passed", owner)
    attempt = 0
    while True:
        attempt += 1
        log = _log_start(alias, instance, index, step, SagaStepLog.Kind.ACTION, attempt)
        try:
            result = _call(step.action, instance)
        except StepFailed as exc:
            _finish_log(log, SagaStepLog.Status.FAILED, error=f"{exc.reason}: {exc.detail}")
            log.save(using=alias)
            if exc.data:
                instance.data = {**instance.data, **exc.data}
            return _begin_compensation(alias, instance, index, exc.reason, exc.detail, owner)
        except Exception as exc:
            _finish_log(log, SagaStepLog.Status.ERROR, error=traceback.format_exc())
            log.save(using=alias)
            logger.warning("Saga %s step %s attempt %s: %s", instance.id, step.name, attempt, exc)
            if attempt <= step.retries:
                time.sleep(_backoff(attempt))
                continue
            reason = step.error_reason or definition.error_reason
            return _begin_compensation(alias, instance, index, reason, str(exc), owner)
        with transaction.atomic(using=alias):
            _finish_log(log, SagaStepLog.Status.SUCCEEDED, result=result)
            log.save(using=alias)
            instance.data = {**instance.data, **result}
            instance.current_step = index + 1
            instance.lease_expires_at = timezone.now() + timedelta(seconds=_lease_seconds())
            instance.save(
                using=alias,
                update_fields=["data", "current_step", "lease_expires_at", "updated_at"],
            )
        return instance


def _begin_compensation(alias, instance, failed_index, reason, detail, owner):
    with transaction.atomic(using=alias):
        instance.state = SagaInstance.State.COMPENSATING
        instance.failure_reason = reason
        instance.current_step = failed_index  # steps [0, failed_index) completed
        instance.data = {**instance.data, "failure_detail": detail[:1000]}
        instance.save(
            using=alias,
            update_fields=["state", "failure_reason", "current_step", "data", "updated_at"],
        )
    logger.info("Saga %s compensating after %s: %s", instance.id, reason, detail)
    return instance


def _run_next_compensation(alias, definition, instance, owner):
    if instance.current_step == 0:
        return _finish(alias, definition, instance, SagaInstance.State.COMPENSATED, owner)
    index = instance.current_step - 1
    step = definition.steps[index]
    if step.compensation is None:
        instance.current_step = index
        instance.save(using=alias, update_fields=["current_step", "updated_at"])
        return instance
    attempt = 0
    while True:
        attempt += 1
        log = _log_start(alias, instance, index, step, SagaStepLog.Kind.COMPENSATION, attempt)
        try:
            result = _call(step.compensation, instance)
        except Exception as exc:
            _finish_log(log, SagaStepLog.Status.ERROR, error=traceback.format_exc())
            log.save(using=alias)
            logger.warning(
                "Saga %s compensation %s attempt %s: %s", instance.id, step.name, attempt, exc
            )
            if attempt <= definition.compensation_retries:
                time.sleep(_backoff(attempt))
                continue
            return _finish(alias, definition, instance, SagaInstance.State.FAILED, owner)
        with transaction.atomic(using=alias):
            _finish_log(log, SagaStepLog.Status.SUCCEEDED, result=result)
            log.save(using=alias)
            instance.data = {**instance.data, **result}
            instance.current_step = index
            instance.lease_expires_at = timezone.now() + timedelta(seconds=_lease_seconds())
            instance.save(
                using=alias,
                update_fields=["data", "current_step", "lease_expires_at", "updated_at"],
            )
        return instance


def _finish(alias, definition, instance, state, owner):
    with transaction.atomic(using=alias):
        instance.state = state
        instance.completed_at = timezone.now()
        instance.save(using=alias, update_fields=["state", "completed_at", "updated_at"])
        if definition.on_finished is not None:
            definition.on_finished(SagaContext(instance))
    return instance


# --- recovery ----------------------------------------------------------------------


def resumable(alias: str):
    """Sagas in this alias that are not final and whose lease is free or expired."""
    now = timezone.now()
    return (
        SagaInstance.objects.using(alias)
        .exclude(state__in=SagaInstance.FINAL_STATES)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .order_by("created_at")
    )


def resume_all(alias: str) -> list[SagaInstance]:
    return [run(alias, saga_id) for saga_id in resumable(alias).values_list("id", flat=True)]
