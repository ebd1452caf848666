"""
Waiting after a technical failure.

A *technical* failure (`cleave.core.errors.is_technical`: a
participant unavailable, its circuit open, a 5xx, a database at its limit) is
neither a refusal nor a bug: the driver logs the attempt `unavailable` and
raises `Wait`; the saga then records `wake_at` and `last_error`, gives up its
lease and is scheduled again through its runner (a timer thread in this
process, or a Celery countdown; the recovery sweep if the process dies
meanwhile), after a capped exponential backoff (`CLEAVE_SAGA_WAIT_BASE`
doubling up to `CLEAVE_SAGA_WAIT_MAX`). No thread is held while it waits.

An action keeps waiting until the saga's deadline (the driver then
compensates); a compensation keeps waiting however long it takes
(compensations are idempotent), and one still failing after the deadline is
logged as an error and counted in `cleave_saga_overdue_compensations`.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cleave.core.backoff import delay
from cleave.observability.metrics import SAGA_OVERDUE_COMPENSATIONS
from cleave.sagas import scheduling
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.sagas.steplog import StepLog

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")

State = SagaInstance.State
Kind = SagaStepLog.Kind


class Wait(Exception):
    """A call met a technical failure: the saga waits and tries again later."""

    def __init__(self, cause: BaseException, index: int, kind: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.index = index
        self.kind = kind


def wait_delay(failures: int) -> float:
    """
    Seconds a saga waits after its `failures`-th technical failure in a row:
    the platform's one backoff (`cleave.core.backoff`) from
    `CLEAVE_SAGA_WAIT_BASE`, at most `CLEAVE_SAGA_WAIT_MAX` (many sagas that met
    one outage must not all call the recovered participant at the same instant).
    """
    return delay(failures, base=settings.CLEAVE_SAGA_WAIT_BASE, cap=settings.CLEAVE_SAGA_WAIT_MAX)


def wait(steplog: StepLog, prepared: SagaStepLog | None, failure: Wait) -> None:
    """
    Give the saga up until a backoff has passed, and have the runner drive it then.

    `prepared`: the `started` row the driver wrote for a call it will now not make.
    """
    instance = steplog.instance
    kinds = (Kind.COMPENSATION,) if failure.kind == Kind.COMPENSATION else (Kind.ACTION, Kind.QUERY)
    failures = steplog.unavailable(failure.index, kinds)
    now = timezone.now()
    wake = now + timedelta(seconds=wait_delay(failures))
    running = instance.state == State.RUNNING
    if running and instance.deadline is not None:
        wake = min(wake, instance.deadline)  # the deadline's compensation must not wait
    error = f"{type(failure.cause).__name__}: {failure.cause}"[:500]
    step = steplog.definition.steps[failure.index].name
    with transaction.atomic(using=steplog.alias):
        if prepared is not None:
            steplog.discard(prepared).run()
        steplog.save(wake_at=wake, last_error=error, lease_owner="", lease_expires_at=None).run()
    if not running and instance.deadline and timezone.now() >= instance.deadline:
        SAGA_OVERDUE_COMPENSATIONS.labels(instance.saga_type, step).inc()
        logger.error(
            "Saga %s: compensation %s still fails after the deadline (%s); retrying at %s",
            instance.id,
            step,
            error,
            wake.isoformat(),
        )
    else:
        logger.warning(
            "Saga %s: %s %s met a technical failure (%s); retrying at %s",
            instance.id,
            step,
            failure.kind,
            error,
            wake.isoformat(),
        )
    scheduling.get_runner().schedule(steplog.alias, instance.id, at=wake)
