"""
What callers, operators and the recovery sweep ask of sagas: start one,
cancel, compensate or retry it, and resume those whose process died.

A saga can be asked to compensate from outside (`request_cancel`,
`compensate`): a running one at its next step boundary, a completed one by
undoing every step (a refund). A failed one waits for an operator (`retry`,
`sagas retry`). The writes these make are requests, not a drive's: they hold
no lease, and the driver that next takes the saga honours them.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any
from uuid import UUID

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from cleave.core import flow
from cleave.core.registry import alias_for
from cleave.observability import tracing
from cleave.observability.metrics import SAGAS_STARTED
from cleave.sagas import scheduling, steplog
from cleave.sagas.definition import get_definition
from cleave.sagas.driver import Started, run
from cleave.sagas.lease import lease_until, new_owner
from cleave.sagas.models import SagaInstance, SagaStepLog

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")

State = SagaInstance.State
Kind = SagaStepLog.Kind


def start(
    name: str,
    *,
    data: dict[str, Any],
    correlation_id: str | None = None,
    completed_steps: int = 0,
    saga_id: UUID | None = None,
) -> SagaInstance:
    """
    Create a saga instance in the owning context's alias, in the caller's
    transaction; it starts running after that transaction commits.

    `saga_id` lets the caller store the saga's id on its own rows before
    starting it (a fresh one by default).

    `completed_steps` says the caller's transaction itself did the work of the
    first steps (orders places the order in the transaction that starts the
    checkout): they are logged as done, and compensated like any other.

    With the in-process runner the instance is created leased to this process,
    with its first step's log row already `started`, so the drive that follows
    the commit writes nothing before its first call. Should the process die
    first, the lease expires and recovery resumes the saga like any other.
    """
    definition = get_definition(name)
    if not 0 <= completed_steps <= len(definition.steps):
        raise ValueError(f"completed_steps must be 0 to {len(definition.steps)}")
    alias = alias_for(definition.context)
    runner = scheduling.get_runner()
    now = timezone.now()
    owner = new_owner() if getattr(runner, "drives_here", False) else ""
    values = {
        "id": saga_id or uuid.uuid4(),
        "saga_type": name,
        "context": definition.context,
        "state": State.RUNNING,
        "current_step": completed_steps,
        "data": data,
        "failure_reason": "",
        "correlation_id": correlation_id or flow.correlation_id(),
        "lease_owner": owner,
        "lease_expires_at": lease_until(now) if owner else None,
        "heartbeat_at": now if owner else None,
        "cancel_requested": "",
        "deadline": now + definition.deadline if definition.deadline else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
        "wake_at": None,
        "last_error": "",
        "traceparent": tracing.current_traceparent() or "",
    }
    instance = steplog.create(alias, values).run()
    transaction.on_commit(lambda: SAGAS_STARTED.labels(name).inc(), using=alias)
    if completed_steps:
        steplog.log_done(alias, instance, definition.steps[:completed_steps], now).run()
    if not owner:
        scheduling.schedule_after_commit(alias, instance.id)
        return instance
    prepared = None
    if completed_steps < len(definition.steps):
        opening = steplog.open_call(
            alias, instance, definition, completed_steps, Kind.ACTION, 1, now
        )
        prepared = opening.run()
    started = Started(alias=alias, instance=instance, owner=owner, prepared=prepared)
    transaction.on_commit(lambda: runner.drive_started(started), using=alias)
    return instance


# --- operator and caller controls ----------------------------------------------------------


def request_cancel(alias: str, saga_id: UUID, reason: str) -> bool:
    """
    Ask a running saga to compensate with `reason` (in the caller's transaction).

    The driver honours it at its next step boundary; if none holds the lease
    the saga is scheduled after commit. False if the saga is no longer running.
    """
    asked = (
        SagaInstance.objects.using(alias)
        .filter(pk=saga_id, state=State.RUNNING, cancel_requested="")
        # a saga waiting for a participant honours the request now
        .update(cancel_requested=reason, wake_at=None, updated_at=timezone.now())
    )
    if asked:
        scheduling.schedule_after_commit(alias, saga_id)
    return bool(asked)


def compensate(alias: str, saga_id: UUID, reason: str | None = None) -> SagaInstance:
    """
    Undo a saga now, with `reason` (the definition's `cancel_reason` by default).

    A completed saga compensates every step (for the checkout: a refund); a
    running one is asked to cancel; a failed one retries its compensation.
    """
    instance = SagaInstance.objects.using(alias).get(pk=saga_id)
    definition = get_definition(instance.saga_type)
    reason = reason or definition.cancel_reason
    now = timezone.now()
    if instance.state == State.COMPLETED:
        SagaInstance.objects.using(alias).filter(pk=saga_id, state=State.COMPLETED).update(
            state=State.COMPENSATING,
            current_step=len(definition.steps),
            failure_reason=reason,
            cancel_requested=reason,
            completed_at=None,
            lease_owner="",
            lease_expires_at=None,
            updated_at=now,
        )
    elif instance.state == State.RUNNING:
        with transaction.atomic(using=alias):
            request_cancel(alias, saga_id, reason)
        return SagaInstance.objects.using(alias).get(pk=saga_id)
    elif instance.state == State.FAILED:
        return retry(alias, saga_id)
    return run(alias, saga_id)


def retry(alias: str, saga_id: UUID) -> SagaInstance:
    """Run a failed saga's compensation again (or continue a stalled one)."""
    SagaInstance.objects.using(alias).filter(pk=saga_id, state=State.FAILED).update(
        state=State.COMPENSATING,
        completed_at=None,
        lease_owner="",
        lease_expires_at=None,
        updated_at=timezone.now(),
    )
    # an operator's retry does not wait for the backoff
    SagaInstance.objects.using(alias).filter(pk=saga_id).exclude(
        state__in=SagaInstance.FINAL_STATES
    ).update(wake_at=None)
    return run(alias, saga_id)


# --- recovery ----------------------------------------------------------------------


def resumable(alias: str) -> QuerySet[SagaInstance]:
    """Sagas in this alias that are not final, whose lease is free or expired and that are due."""
    now = timezone.now()
    return (
        SagaInstance.objects.using(alias)
        .exclude(state__in=SagaInstance.FINAL_STATES)
        .filter(Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now))
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lte=now))
        .order_by("created_at")
    )


def resume_all(alias: str) -> list[SagaInstance]:
    """Continue, in this process, every saga of `alias` whose process died."""
    resumed = []
    for saga_id in list(resumable(alias).values_list("id", flat=True)):
        try:
            resumed.append(run(alias, saga_id))
        except Exception:  # one broken saga must not keep the others waiting
            logger.exception("Saga %s could not be resumed", saga_id)
    return resumed


def dispatch_resumable(alias: str, *, limit: int = 500) -> int:
    """Hand every resumable saga of `alias` to the configured runner; return how many."""
    runner = scheduling.get_runner()
    ids = list(resumable(alias).values_list("id", flat=True)[:limit])
    for saga_id in ids:
        runner.schedule(alias, saga_id)
    return len(ids)
