"""
Durable orchestrated sagas, written by hand: no library persists sagas per
context alias with a step log, leases, timeouts and compensation the way this
project needs.

A `SagaDefinition` is an ordered list of `Step`s. An instance lives in its
owning context's alias. One process at a time drives it, holding a *lease*
(renewed at every step boundary and, while a participant is being called, by a
monitor thread: the heartbeat); every write of the driver is fenced by the
lease. A process that dies stops renewing it, and once it expires `resume` (a
command, a periodic job) continues the saga elsewhere.

Every attempt of every step is a row in the step log, written `started` before
the participant is called and finished, with the step's result, in the same
transaction that advances the instance. A `started` row found later therefore
means "the process died during this call": the outcome is unknown, and the
action is simply called again with the same idempotency key (participants
return the first result).

How a step ends:

- it returns a dict: merged into the saga's data; the next step begins;
- it raises `StepFailed(reason)`: a participant refused, nothing took effect;
  the completed steps are compensated in reverse order;
- it raises `OutcomeUnknown`, any other exception (after `retries` attempts
  with exponential backoff and jitter), or it exceeds its `timeout`: the step
  *may* have taken effect. The step's `query` (if any) asks the participant by
  idempotency key; if that cannot settle it, the step is compensated too, so
  every compensation must be idempotent and safe when its action never ran.

A *technical* failure (`cleave.resilience.failures.is_technical`: a
participant unavailable, its circuit open, a 5xx, a database at its limit) is
neither a refusal nor a bug: the attempt is logged `unavailable`, the saga
records `wake_at` and `last_error`, gives up its lease and is scheduled again
through its runner (a timer thread in this process, or a Celery countdown; the
recovery sweep if the process dies meanwhile), after a capped exponential
backoff (`CLEAVE_SAGA_WAIT_BASE` doubling up to `CLEAVE_SAGA_WAIT_MAX`). No
thread is held while it waits. An action keeps waiting until the saga's
deadline; then the saga compensates, the waiting step included (it may have
taken effect), with the definition's `unavailable_reason`. A compensation
keeps waiting however long it takes (compensations are idempotent); one still
failing after the deadline is logged as an error and counted in
`cleave_saga_overdue_compensations`.

Other errors in a compensation (bugs) are retried with backoff; when those
retries are exhausted the saga is `failed` and waits for an operator
(`sagas retry`). A saga can be asked to
compensate from outside (`request_cancel`, `compensate`): a running one at its
next step boundary, a completed one by undoing every step (a refund).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from cleave import db, flow, observability
from cleave.contexts import alias_for
from cleave.metrics import (
    SAGA_OVERDUE_COMPENSATIONS,
    SAGA_STEP_DURATION,
    SAGAS_FINISHED,
    SAGAS_STARTED,
)
from cleave.resilience.failures import is_technical

from .models import SagaInstance, SagaStepLog

logger = logging.getLogger(__name__)

State = SagaInstance.State
Kind = SagaStepLog.Kind
Status = SagaStepLog.Status


class StepFailed(Exception):
    """A participant refused the step; nothing took effect. The saga compensates with `reason`."""

    def __init__(
        self, reason: str, detail: str = "", *, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail
        self.data = data or {}


class OutcomeUnknown(Exception):
    """
    The step may or may not have taken effect (a timeout, a pending answer).

    The engine asks the step's `query`, and otherwise compensates the step
    itself as well as the completed ones.
    """

    def __init__(
        self, reason: str | None = None, detail: str = "", *, data: dict[str, Any] | None = None
    ) -> None:
        super().__init__(detail or reason or "outcome unknown")
        self.reason = reason
        self.detail = detail
        self.data = data or {}


class Superseded(Exception):
    """This driver lost the saga (its step timed out, or its lease was taken over)."""


class _Wait(Exception):
    """A call met a technical failure: the saga waits and tries again later."""

    def __init__(self, cause: BaseException, index: int, kind: str) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.index = index
        self.kind = kind


class SagaContext:
    """What a step sees: the saga's id, its accumulated data and correlation id."""

    def __init__(
        self,
        instance: SagaInstance,
        *,
        step: str | None = None,
        kind: str = Kind.ACTION,
        attempt: int = 1,
    ) -> None:
        self.instance = instance
        self.id: UUID = instance.id
        self.data: dict[str, Any] = dict(instance.data)
        self.correlation_id = instance.correlation_id
        self.failure_reason = instance.failure_reason
        self.step = step
        self.kind = kind
        self.attempt = attempt
        self.local_effects: list[Callable[[], dict[str, Any] | None]] = []

    def with_step_commit(self, effect: Callable[[], dict[str, Any] | None]) -> None:
        """
        Run `effect` in the transaction that records this action's result.

        For an action whose last part writes to the saga's own context: those
        writes and the saga's progress then commit together, in one
        transaction instead of two. `effect` runs after the action returns,
        before anything is committed; it must be idempotent like the action
        (a crash before the commit runs the action, and it, again). What it
        returns is merged into the action's result; what it raises counts as
        the action's failure.
        """
        if self.kind != Kind.ACTION:
            raise ValueError("only an action can commit with its step")
        self.local_effects.append(effect)

    def idempotency_key(self, step: str | None = None, kind: str = Kind.ACTION) -> str:
        """
        The key a participant deduplicates this call by.

        An action's key is `saga:<id>:<step>`, the same on every attempt and
        after a crash; a compensation, or a query, can name the action's key
        to find what the action did even when the action never returned.
        """
        name = step or self.step
        if not name:
            raise ValueError("idempotency_key() needs a step name outside a step")
        suffix = "" if kind in (Kind.ACTION, Kind.QUERY) else f":{kind}"
        return f"saga:{self.id}:{name}{suffix}"

    @property
    def key(self) -> str:
        """The idempotency key of the call being made now."""
        return self.idempotency_key(self.step, self.kind)


StepFn = Callable[[SagaContext], dict[str, Any] | None]


@dataclass(frozen=True)
class Step:
    """
    One step: an action, its optional compensation and query, a timeout and a retry policy.

    `retries` counts extra attempts after a technical error. `timeout`
    (seconds) bounds one action call; a call that exceeds it has an unknown
    outcome (`timeout_reason`). `error_reason` is the failure reason when
    technical errors persist (else the definition's). `query(ctx)` settles an
    unknown outcome: it returns the action's result if the action took
    effect, None if it did not, raises `StepFailed` for a refusal, anything
    else when it still cannot tell.
    """

    name: str
    action: StepFn
    compensation: StepFn | None = None
    retries: int = 2
    timeout: float | None = None
    error_reason: str | None = None
    query: StepFn | None = None
    timeout_reason: str = "timeout"


@dataclass(frozen=True)
class SagaDefinition:
    """
    An ordered list of steps owned by one context.

    `deadline` bounds the whole saga (reason `deadline_reason` when it
    passes); `cancel_reason` is the reason used when an operator compensates
    without giving one.
    """

    name: str
    context: str
    steps: tuple[Step, ...]
    deadline: timedelta | None = None
    error_reason: str = "error"
    compensation_retries: int = 5
    on_finished: StepFn | None = field(default=None)
    # run in the transaction that ends the saga `failed` (its compensation gave
    # up): what must hold even then (the checkout's order must not stay pending)
    on_failed: StepFn | None = None
    deadline_reason: str = "timeout"
    cancel_reason: str = "cancelled"
    # the reason when the deadline passes while a participant is unavailable
    unavailable_reason: str = "service_unavailable"

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


# --- runners ---------------------------------------------------------------------------


class Runner(Protocol):
    # whether `start()` may lease a new saga to this process, which then drives
    # it right after the commit (see `_Start`)
    drives_here: bool

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None: ...


class InProcessRunner:
    """The embedded default: drive the saga in this process, now (or at `at`, by a timer)."""

    drives_here = True

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None:
        if at is not None and at > timezone.now():
            _waker().add(at, alias, saga_id)
            return
        try:
            run(alias, saga_id)
        except Exception:  # the saga keeps its lease; recovery resumes it
            logger.exception("Saga %s stopped with an unexpected error", saga_id)

    def drive_started(self, started: _Start) -> None:
        """Drive a saga this process started and leased in the committed transaction."""
        try:
            run(started.alias, started.instance.id, started=started)
        except Exception:  # the saga keeps its lease; recovery resumes it when it expires
            logger.exception("Saga %s stopped with an unexpected error", started.instance.id)


class CeleryRunner:
    """Send the task `cleave.sagas.run` to the owning context's queue."""

    drives_here = False

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None:
        saga = SagaInstance.objects.using(alias).only("context").filter(pk=saga_id).first()
        if saga is None:
            return
        from cleave.events.broker import celery_app

        options: dict[str, Any] = {"queue": queue_for(saga.context)}
        if at is not None and at > timezone.now():
            options["countdown"] = (at - timezone.now()).total_seconds()
        # the same app, with the same queue declarations, that carries the events
        celery_app().send_task(TASK_NAME, args=(alias, str(saga_id)), **options)


TASK_NAME = "cleave.sagas.run"


def queue_for(context: str) -> str:
    """A context's Celery queue: the one its event handlers use."""
    from cleave.events.topology import queue_name

    return queue_name(context)


_RUNNERS: dict[str, type] = {"inprocess": InProcessRunner, "celery": CeleryRunner}


def runner_name() -> str:
    """`CLEAVE_SAGA_RUNNER`, which follows `CLEAVE_EVENT_TRANSPORT` unless set."""
    name = getattr(settings, "CLEAVE_SAGA_RUNNER", None)
    if not name:
        transport = getattr(settings, "CLEAVE_EVENT_TRANSPORT", "inprocess")
        name = "celery" if transport == "celery" else "inprocess"
    if name not in _RUNNERS:
        raise ImproperlyConfigured(f"CLEAVE_SAGA_RUNNER={name!r} is not one of {sorted(_RUNNERS)}")
    return name


def get_runner() -> Runner:
    return _RUNNERS[runner_name()]()


# --- starting -----------------------------------------------------------------------------


@dataclass
class _Start:
    """
    A saga started by this process for the in-process runner, leased in the
    starting transaction: after the commit the runner drives it from here
    without reading it back or taking the lease again.
    """

    alias: str
    instance: SagaInstance
    owner: str
    prepared: SagaStepLog | None


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
    runner = get_runner()
    now = timezone.now()
    owner = _owner() if getattr(runner, "drives_here", False) else ""
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
        "lease_expires_at": _lease_until(now) if owner else None,
        "heartbeat_at": now if owner else None,
        "cancel_requested": "",
        "deadline": now + definition.deadline if definition.deadline else None,
        "created_at": now,
        "updated_at": now,
        "completed_at": None,
        "wake_at": None,
        "last_error": "",
        "traceparent": observability.current_traceparent() or "",
    }
    db.insert(SagaInstance, alias, values)
    transaction.on_commit(lambda: SAGAS_STARTED.labels(name).inc(), using=alias)
    instance = SagaInstance(**values)
    instance._state.adding = False
    instance._state.db = alias
    if completed_steps:
        db.insert_many(
            SagaStepLog,
            alias,
            [
                {
                    "saga_id": instance.id,
                    "step_index": index,
                    "step": step.name,
                    "kind": Kind.ACTION,
                    "attempt": 1,
                    "status": Status.SUCCEEDED,
                    "idempotency_key": "",
                    "result": {},
                    "error": "done by the transaction that started the saga",
                    "started_at": now,
                    "finished_at": now,
                    "duration_ms": 0.0,
                }
                for index, step in enumerate(definition.steps[:completed_steps])
            ],
        )
    if not owner:
        _schedule_after_commit(alias, instance.id)
        return instance
    prepared = None
    if completed_steps < len(definition.steps):
        opening = _log_statement(alias, instance, definition, completed_steps, Kind.ACTION, 1, now)
        prepared = _run_log(alias, *opening)
    started = _Start(alias=alias, instance=instance, owner=owner, prepared=prepared)
    transaction.on_commit(lambda: runner.drive_started(started), using=alias)
    return instance


def _log_statement(
    alias: str,
    instance: SagaInstance,
    definition: SagaDefinition,
    index: int,
    kind: str,
    attempt: int,
    now: datetime | None = None,
) -> tuple[db.Statement, dict[str, Any]]:
    """The insert of a `started` step-log row for one call, prepared; and its values."""
    step = definition.steps[index]
    values = {
        "saga_id": instance.id,
        "step_index": index,
        "step": step.name,
        "kind": kind,
        "attempt": attempt,
        "status": Status.STARTED,
        "idempotency_key": SagaContext(instance, step=step.name, kind=kind).key,
        "result": None,
        "error": "",
        "started_at": now or timezone.now(),
        "finished_at": None,
        "duration_ms": None,
    }
    return db.prepare_insert(SagaStepLog, alias, values, returning_pk=True), values


def _run_log(alias: str, statement: db.Statement, values: dict[str, Any]) -> SagaStepLog:
    """Run a prepared `started` row's insert; return the row (in memory, with its id)."""
    log = SagaStepLog(id=statement.run(), **values)
    log._state.adding = False
    log._state.db = alias
    return log


def _schedule_after_commit(alias: str, saga_id: UUID) -> None:
    runner = get_runner()
    transaction.on_commit(lambda: runner.schedule(alias, saga_id), using=alias)


def _completed(state: str = State.COMPLETED) -> dict[str, Any]:
    """The fields that end a saga in `state`, its lease released."""
    return {
        "state": state,
        "completed_at": timezone.now(),
        "lease_owner": "",
        "lease_expires_at": None,
    }


# --- leases -----------------------------------------------------------------------------


def _owner() -> str:
    # unique per drive: two drivers in one thread (a timed-out step's late
    # return, and its successor) must not mistake each other for themselves
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def _lease_seconds() -> float:
    return float(getattr(settings, "CLEAVE_SAGA_LEASE_SECONDS", 30))


def _lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=_lease_seconds())


# A timer or a Celery countdown may fire a little before `wake_at`.
WAKE_TOLERANCE = timedelta(milliseconds=200)


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
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lte=now + WAKE_TOLERANCE))
        .update(
            lease_owner=owner, lease_expires_at=_lease_until(now), heartbeat_at=now, updated_at=now
        )
    )
    return taken == 1


# --- driving ------------------------------------------------------------------------------


def run(alias: str, saga_id: UUID, *, started: _Start | None = None) -> SagaInstance:
    """
    Drive one saga as far as it goes now; return its persisted state.

    `started`: the saga was just started and leased by this process (the
    in-process runner, right after the starting commit).
    """
    owner = started.owner if started is not None else _owner()
    if started is not None or acquire(alias, saga_id, owner):
        driver = None
        try:
            driver = _Driver(alias, saga_id, owner, started=started)
            driver.drive()
        except Superseded:
            logger.info("Saga %s: another driver took over", saga_id)
            driver = None
        finally:
            if driver is None or not driver.instance.is_final:
                _release(alias, saga_id, owner)
        if driver is not None and driver.instance.is_final:
            return driver.instance  # exactly as this driver persisted it
    return SagaInstance.objects.using(alias).get(pk=saga_id)


def _release(alias: str, saga_id: UUID, owner: str) -> None:
    try:
        SagaInstance.objects.using(alias).filter(pk=saga_id, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None
        )
    except Exception:  # the lease then simply expires
        logger.exception("Saga %s: could not release its lease", saga_id)


def _backoff(attempt: int) -> float:
    base = float(getattr(settings, "CLEAVE_SAGA_RETRY_BASE", 0.05))
    return base * (2 ** (attempt - 1)) * random.uniform(0.5, 1.5)  # noqa: S311 - jitter


def _wait_delay(failures: int) -> float:
    """
    Seconds a saga waits after its `failures`-th technical failure in a row:
    `CLEAVE_SAGA_WAIT_BASE * 2**(failures - 1)`, at most `CLEAVE_SAGA_WAIT_MAX`,
    less up to a quarter of random jitter (many sagas that met one outage must
    not all call the recovered participant at the same instant).
    """
    base = settings.CLEAVE_SAGA_WAIT_BASE
    delay = min(settings.CLEAVE_SAGA_WAIT_MAX, base * 2 ** min(max(failures - 1, 0), 30))
    return delay * random.uniform(0.75, 1.0)  # noqa: S311 - jitter


@dataclass(frozen=True)
class _Returned:
    """An action's result together with the effects to run in its step's commit."""

    result: dict[str, Any]
    local_effects: tuple[Callable[[], dict[str, Any] | None], ...]


def _invoke(fn: StepFn, instance: SagaInstance, step: Step, kind: str, attempt: int) -> Any:
    """
    Call one action, compensation or query (a seam for tests that inject faults).

    Returns the result; an action that asked for `with_step_commit` returns a
    `_Returned` carrying the effects too.
    """
    ctx = SagaContext(instance, step=step.name, kind=kind, attempt=attempt)
    started = time.perf_counter()
    status = "error"
    try:
        # a child of the trace that started the saga, in whatever process runs it
        with observability.span_from_traceparent(
            f"saga {instance.saga_type} {step.name} {kind}",
            instance.traceparent or observability.current_traceparent(),
            **{
                "cleave.saga_id": str(instance.id),
                "cleave.step": step.name,
                "cleave.step_kind": kind,
                "cleave.attempt": attempt,
                "cleave.correlation_id": instance.correlation_id,
            },
        ):
            result = fn(ctx)
        status = "succeeded"
    except StepFailed:
        status = "failed"
        raise
    except OutcomeUnknown:
        status = "unknown"
        raise
    except Exception as exc:
        status = "unavailable" if is_technical(exc) else "error"
        raise
    finally:
        SAGA_STEP_DURATION.labels(instance.saga_type, step.name, kind, status).observe(
            time.perf_counter() - started
        )
    if kind == Kind.QUERY:
        return result
    if ctx.local_effects:
        return _Returned(result or {}, tuple(ctx.local_effects))
    return result or {}


@dataclass
class _Outcome:
    """What an unknown outcome turned out to be."""

    result: dict[str, Any] | None = None  # the action took effect with this result
    refusal: StepFailed | None = None  # the participant refused
    absent: bool = False  # the action did not take effect


class _Driver:
    """One process's drive of one saga, while it holds the lease as `owner`."""

    def __init__(
        self, alias: str, saga_id: UUID, owner: str, *, started: _Start | None = None
    ) -> None:
        self.alias = alias
        self.saga_id = saga_id
        self.owner = owner
        # the `started` log row this driver wrote for its next call
        self.prepared: SagaStepLog | None = None
        if started is not None:
            self.instance = started.instance
            self.prepared = started.prepared
        else:
            self.instance = SagaInstance.objects.using(alias).get(pk=saga_id)
        self.definition = get_definition(self.instance.saga_type)

    # --- persistence, fenced by the lease ------------------------------------------

    def _save(self, *, fence_cancel: bool = False, **fields: Any) -> bool:
        """
        Update the instance if this driver still holds the lease; raise Superseded if not.

        With `fence_cancel`, return False (writing nothing) when a cancellation
        was requested meanwhile, so the caller can honour it first.
        """
        return self._run_save(*self._save_statement(fence_cancel=fence_cancel, **fields))

    def _save_statement(
        self, *, fence_cancel: bool = False, **fields: Any
    ) -> tuple[db.Statement, dict[str, Any]]:
        """`_save()`'s update, prepared (the lease renewed from now); and its fields."""
        now = timezone.now()
        fields.setdefault("lease_expires_at", _lease_until(now))
        fields["heartbeat_at"] = now
        fields["updated_at"] = now
        where: dict[str, Any] = {"id": self.saga_id, "lease_owner": self.owner}
        if fence_cancel:
            where["cancel_requested"] = ""
        return db.prepare_update(SagaInstance, self.alias, fields, where=where), fields

    def _run_save(self, statement: db.Statement, fields: dict[str, Any]) -> bool:
        """Run a prepared `_save()`, with its verdict."""
        if statement.run():
            for name, value in fields.items():
                setattr(self.instance, name, value)
            return True
        current = (
            SagaInstance.objects.using(self.alias)
            .filter(pk=self.saga_id)
            .values("lease_owner", "cancel_requested")
            .first()
        )
        if current is None or current["lease_owner"] != self.owner:
            raise Superseded()
        self.instance.cancel_requested = current["cancel_requested"]
        return False

    def _start_log(self, index: int, kind: str, attempt: int) -> SagaStepLog:
        """Write a `started` row (and renew the lease) before calling a participant."""
        with transaction.atomic(using=self.alias):
            self._save()
            return self._log(index, kind, attempt)

    def _log(self, index: int, kind: str, attempt: int) -> SagaStepLog:
        opening = _log_statement(self.alias, self.instance, self.definition, index, kind, attempt)
        return _run_log(self.alias, *opening)

    def _finish_log(self, log: SagaStepLog, status: str, *, result=None, error: str = "") -> None:
        """Finish a `started` row; raise Superseded if the monitor timed it out first."""
        self._run_finish(log, status, self._finish_statement(log, status, result, error))

    def _finish_statement(
        self, log: SagaStepLog, status: str, result=None, error: str = ""
    ) -> db.Statement:
        now = timezone.now()
        return db.prepare_update(
            SagaStepLog,
            self.alias,
            {
                "status": status,
                "result": result,
                "error": error[:20000],
                "finished_at": now,
                "duration_ms": (now - log.started_at).total_seconds() * 1000,
            },
            where={"id": log.pk, "status": Status.STARTED},
        )

    def _run_finish(self, log: SagaStepLog, status: str, statement: db.Statement) -> None:
        if not statement.run():
            raise Superseded()
        log.status = status

    # --- the loop ---------------------------------------------------------------------

    def drive(self) -> None:
        with flow.flow(correlation_id=self.instance.correlation_id, causation_id=str(self.saga_id)):
            while not self.instance.is_final:
                try:
                    if self.instance.state == State.RUNNING:
                        self._advance()
                    elif self.instance.state == State.COMPENSATING:
                        self._compensate_next()
                    else:  # pragma: no cover - states are closed
                        break
                except _Wait as wait:
                    return self._wait(wait)

    def _wait(self, wait: _Wait) -> None:
        """Give the saga up until a backoff has passed, and have the runner drive it then."""
        kinds = (
            (Kind.COMPENSATION,) if wait.kind == Kind.COMPENSATION else (Kind.ACTION, Kind.QUERY)
        )
        failures = (
            SagaStepLog.objects.using(self.alias)
            .filter(
                saga_id=self.saga_id,
                step_index=wait.index,
                kind__in=kinds,
                status=Status.UNAVAILABLE,
            )
            .count()
        )
        now = timezone.now()
        wake = now + timedelta(seconds=_wait_delay(failures))
        running = self.instance.state == State.RUNNING
        if running and self.instance.deadline is not None:
            wake = min(wake, self.instance.deadline)  # the deadline's compensation must not wait
        error = f"{type(wait.cause).__name__}: {wait.cause}"[:500]
        step = self.definition.steps[wait.index].name
        with transaction.atomic(using=self.alias):
            self._discard(self.prepared)
            self.prepared = None
            self._save(wake_at=wake, last_error=error, lease_owner="", lease_expires_at=None)
        if not running and self._past_deadline():
            SAGA_OVERDUE_COMPENSATIONS.labels(self.instance.saga_type, step).inc()
            logger.error(
                "Saga %s: compensation %s still fails after the deadline (%s); retrying at %s",
                self.saga_id,
                step,
                error,
                wake.isoformat(),
            )
        else:
            logger.warning(
                "Saga %s: %s %s met a technical failure (%s); retrying at %s",
                self.saga_id,
                step,
                wait.kind,
                error,
                wake.isoformat(),
            )
        get_runner().schedule(self.alias, self.saga_id, at=wake)

    def _open_attempt(self, index: int, kinds: tuple[str, ...]) -> SagaStepLog | None:
        """The last log row if it is a started, timed-out or unavailable call of step `index`."""
        last = SagaStepLog.objects.using(self.alias).filter(saga_id=self.saga_id).order_by("id")
        last = last.last()
        if (
            last is not None
            and last.step_index == index
            and last.kind in kinds
            and last.status in (Status.STARTED, Status.TIMEOUT, Status.UNAVAILABLE)
        ):
            return last
        return None

    def _interrupted(self, log: SagaStepLog) -> None:
        self._finish_log(
            log, Status.ERROR, error="interrupted: the process making this call stopped"
        )

    def _budget(self, step: Step) -> float | None:
        """The step's timeout, cut short by the saga's deadline."""
        budget = step.timeout
        if self.instance.deadline is not None:
            left = (self.instance.deadline - timezone.now()).total_seconds()
            budget = max(0.0, left) if budget is None else max(0.0, min(budget, left))
        return budget

    def _advance(self) -> None:
        index = self.instance.current_step
        steps = self.definition.steps
        prepared, self.prepared = self.prepared, None
        in_doubt = timed_out = False
        # with a row of its own prepared, this driver knows the log ends with it
        open_attempt = (
            None if prepared is not None else self._open_attempt(index, (Kind.ACTION, Kind.QUERY))
        )
        if open_attempt is not None:
            in_doubt = True  # a call of this step may have taken effect
            if open_attempt.status == Status.TIMEOUT:
                timed_out = True
            elif open_attempt.status == Status.STARTED:  # its process died during the call
                self._interrupted(open_attempt)
            prepared = None
        if index >= len(steps):
            if self.instance.cancel_requested:
                # asked to cancel while the last step ran: undo everything
                return self._begin_compensation(
                    len(steps), self.instance.cancel_requested, "cancellation requested"
                )
            return self._finish(State.COMPLETED)
        step = steps[index]
        if self.instance.cancel_requested or self._past_deadline():
            self._discard(prepared)
            if self.instance.cancel_requested:
                reason, detail = self.instance.cancel_requested, "cancellation requested"
            elif self.instance.last_error:  # it was waiting for a participant to come back
                reason = self.definition.unavailable_reason
                detail = f"saga deadline passed: {self.instance.last_error}"
            else:
                reason, detail = self.definition.deadline_reason, "saga deadline passed"
            return self._begin_compensation(index + in_doubt, reason, detail)
        if timed_out:
            return self._settle_unknown(step, index, step.timeout_reason, open_attempt.error)
        log = prepared
        attempt = log.attempt if log is not None else self._attempts(index) + 1
        while True:
            if log is None:
                log = self._start_log(index, Kind.ACTION, attempt)
            watchdog = self._watch(log, self._budget(step))
            try:
                result = _invoke(step.action, self.instance, step, Kind.ACTION, attempt)
                if isinstance(result, _Returned):
                    # the action's local writes and the step's result: one commit
                    with transaction.atomic(using=self.alias):
                        data = dict(result.result)
                        for effect in result.local_effects:
                            data.update(effect() or {})
                        return self._complete_step(log, index, data)
            except Superseded:
                raise
            except StepFailed as exc:
                self._finish_log(log, Status.FAILED, error=f"{exc.reason}: {exc.detail}")
                return self._begin_compensation(index, exc.reason, exc.detail, data=exc.data)
            except OutcomeUnknown as exc:
                self._finish_log(log, Status.ERROR, error=f"outcome unknown: {exc}")
                reason = exc.reason or step.error_reason or self.definition.error_reason
                return self._settle_unknown(step, index, reason, str(exc), data=exc.data)
            except Exception as exc:
                if is_technical(exc):
                    self._finish_log(log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}")
                    if self._past_deadline():
                        detail = f"saga deadline passed: {exc}"
                        # the call may have taken effect: compensate this step too
                        return self._begin_compensation(
                            index + 1, self.definition.unavailable_reason, detail
                        )
                    raise _Wait(exc, index, Kind.ACTION) from exc
                self._finish_log(log, Status.ERROR, error=traceback.format_exc())
                logger.warning(
                    "Saga %s step %s attempt %s: %s", self.saga_id, step.name, attempt, exc
                )
                if attempt <= step.retries and not self._past_deadline():
                    time.sleep(_backoff(attempt))
                    attempt += 1
                    log = None
                    continue
                reason = step.error_reason or self.definition.error_reason
                return self._settle_unknown(step, index, reason, str(exc))
            finally:
                watchdog.stop()
            return self._complete_step(log, index, result)

    def _discard(self, prepared: SagaStepLog | None) -> None:
        """Drop a `started` row whose call will not be made after all."""
        if prepared is not None:
            SagaStepLog.objects.using(self.alias).filter(
                pk=prepared.pk, status=Status.STARTED
            ).delete()

    def _past_deadline(self) -> bool:
        return bool(self.instance.deadline and timezone.now() >= self.instance.deadline)

    def _complete_step(self, log: SagaStepLog, index: int, result: dict[str, Any]) -> None:
        """
        Persist the step's result and advance, in one commit: with the next
        step's log row opened, or, after the last step, the saga completed.

        The statements are prepared before the transaction opens, so that it
        holds its locks (on SQLite, the file's write lock) only while they run.
        """
        steps = self.definition.steps
        data = {**self.instance.data, **result}
        nxt = index + 1
        last = nxt >= len(steps) and self.definition.on_finished is None
        finish = self._finish_statement(log, Status.SUCCEEDED, result)
        ending = _completed() if last else {}
        if self.instance.last_error or self.instance.wake_at:
            ending.update(last_error="", wake_at=None)
        save = self._save_statement(fence_cancel=True, data=data, current_step=nxt, **ending)
        opening = None
        if not last and nxt < len(steps) and not self._past_deadline():
            opening = _log_statement(
                self.alias, self.instance, self.definition, nxt, Kind.ACTION, 1
            )
        # inside an action's own commit (`with_step_commit`) it adds to it, no savepoint
        with transaction.atomic(using=self.alias, savepoint=False):
            self._run_finish(log, Status.SUCCEEDED, finish)
            # a cancellation that arrives as the step completes still counts
            if not self._run_save(*save):
                # it did: record the result, then honour it
                self._save(data=data, current_step=nxt)
            elif opening is not None:
                self.prepared = _run_log(self.alias, *opening)
        if last and self.instance.state == State.COMPLETED:
            self._finished(State.COMPLETED)
        else:
            logger.info(
                "Saga %s: step %s done",
                self.saga_id,
                steps[index].name,
                extra={"step": steps[index].name},
            )

    def _settle_unknown(
        self,
        step: Step,
        index: int,
        reason: str,
        detail: str,
        *,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Ask the step's query what happened; compensate the step too if it cannot tell."""
        if data:
            self._save(data={**self.instance.data, **data})
        outcome = self._query(step, index)
        if outcome.result is not None:
            with transaction.atomic(using=self.alias):
                self._save(data={**self.instance.data, **outcome.result}, current_step=index + 1)
            return None
        if outcome.refusal is not None:
            exc = outcome.refusal
            return self._begin_compensation(index, exc.reason, exc.detail, data=exc.data)
        if outcome.absent and self._attempts(index) <= step.retries and not self._past_deadline():
            return None  # it did not take effect: the next pass calls the action again
        return self._begin_compensation(index + 1, reason, detail)

    def _attempts(self, index: int) -> int:
        return (
            SagaStepLog.objects.using(self.alias)
            .filter(saga_id=self.saga_id, step_index=index, kind=Kind.ACTION)
            .count()
        )

    def _query(self, step: Step, index: int) -> _Outcome:
        if step.query is None:
            return _Outcome()
        for attempt in range(1, step.retries + 2):
            log = self._start_log(index, Kind.QUERY, attempt)
            watchdog = self._watch(log, None)
            try:
                found = _invoke(step.query, self.instance, step, Kind.QUERY, attempt)
            except StepFailed as exc:
                self._finish_log(log, Status.FAILED, error=f"{exc.reason}: {exc.detail}")
                return _Outcome(refusal=exc)
            except OutcomeUnknown as exc:
                self._finish_log(log, Status.ERROR, error=f"outcome unknown: {exc}")
                return _Outcome()
            except Exception as exc:
                if is_technical(exc) and not self._past_deadline():
                    # ask again later; the step stays in doubt meanwhile
                    self._finish_log(log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}")
                    raise _Wait(exc, index, Kind.QUERY) from exc
                self._finish_log(log, Status.ERROR, error=traceback.format_exc())
                if attempt <= step.retries:
                    time.sleep(_backoff(attempt))
                    continue
                return _Outcome()
            finally:
                watchdog.stop()
            self._finish_log(log, Status.SUCCEEDED, result=found)
            if found is None:
                return _Outcome(absent=True)
            return _Outcome(result=dict(found))
        return _Outcome()  # pragma: no cover - the loop always returns

    def _begin_compensation(
        self, upto: int, reason: str, detail: str, *, data: dict[str, Any] | None = None
    ) -> None:
        """Compensate steps [0, upto) in reverse order, with `reason`."""
        with transaction.atomic(using=self.alias):
            self._discard(self.prepared)
            self._save(
                state=State.COMPENSATING,
                failure_reason=reason,
                current_step=upto,
                data={
                    **self.instance.data,
                    **(data or {}),
                    "failure_detail": (detail or "")[:1000],
                },
            )
        self.prepared = None
        logger.info("Saga %s compensating after %s: %s", self.saga_id, reason, detail)

    def _compensate_next(self) -> None:
        if self.instance.current_step == 0:
            return self._finish(State.COMPENSATED)
        index = self.instance.current_step - 1
        step = self.definition.steps[index]
        if step.compensation is None:
            self._save(current_step=index)
            return None
        open_attempt = self._open_attempt(index, (Kind.COMPENSATION,))
        if open_attempt is not None and open_attempt.status == Status.STARTED:
            self._interrupted(open_attempt)
        attempt = (
            SagaStepLog.objects.using(self.alias)
            .filter(saga_id=self.saga_id, step_index=index, kind=Kind.COMPENSATION)
            .count()
        )
        tries = 0
        while True:
            attempt += 1
            tries += 1
            log = self._start_log(index, Kind.COMPENSATION, attempt)
            watchdog = self._watch(log, None)
            try:
                result = _invoke(step.compensation, self.instance, step, Kind.COMPENSATION, attempt)
            except Exception as exc:
                if is_technical(exc):
                    # compensations are idempotent: retried until they succeed
                    self._finish_log(log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}")
                    raise _Wait(exc, index, Kind.COMPENSATION) from exc
                self._finish_log(log, Status.ERROR, error=traceback.format_exc())
                logger.warning(
                    "Saga %s compensation %s attempt %s: %s", self.saga_id, step.name, attempt, exc
                )
                if tries <= self.definition.compensation_retries:
                    time.sleep(_backoff(tries))
                    continue
                return self._finish(State.FAILED)
            finally:
                watchdog.stop()
            cleared = {"last_error": "", "wake_at": None} if self.instance.last_error else {}
            with transaction.atomic(using=self.alias):
                self._finish_log(log, Status.SUCCEEDED, result=result)
                self._save(data={**self.instance.data, **result}, current_step=index, **cleared)
            return None

    def _finish(self, state: str) -> None:
        with transaction.atomic(using=self.alias):
            finished = self._save(
                # a cancellation that arrives as the saga completes still counts
                fence_cancel=state == State.COMPLETED,
                **_completed(state),
            )
            if not finished:
                return
            if self.definition.on_finished is not None:
                self.definition.on_finished(SagaContext(self.instance))
            if state == State.FAILED and self.definition.on_failed is not None:
                self.definition.on_failed(SagaContext(self.instance))
        self._finished(state)
        if state == State.FAILED:
            logger.error(
                "Saga %s failed: compensation exhausted after %s; an operator must act",
                self.saga_id,
                self.instance.failure_reason,
            )

    def _finished(self, state: str) -> None:
        """Count and log the end of the saga, once its final state is committed."""
        reason = self.instance.failure_reason or ""
        SAGAS_FINISHED.labels(self.instance.saga_type, state, reason).inc()
        if state != State.FAILED:  # failed has its own ERROR line
            logger.info(
                "Saga %s %s %s%s",
                self.instance.saga_type,
                self.saga_id,
                state,
                f" ({reason})" if reason else "",
                extra={"saga_state": state, "reason": reason},
            )

    # --- step timeouts ----------------------------------------------------------------

    def _watch(self, log: SagaStepLog, budget: float | None) -> _Watch:
        return _monitor().watch(self.alias, self.saga_id, log, self.owner, budget)


@dataclass(eq=False)
class _Watch:
    """One participant call being watched: its lease to renew and its time budget."""

    alias: str
    saga_id: UUID
    log: SagaStepLog
    owner: str
    budget: float | None
    next_beat: float
    ends: float | None
    monitor: _Monitor | None = None

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.forget(self)


class _Monitor:
    """
    Keeps the lease alive while participants are being called, and enforces timeouts.

    One daemon thread per process watches every call in flight. Every third
    of the lease it renews the lease of each (the heartbeat), so a live
    driver keeps its saga however long a call takes, while a dead one's lease
    runs out quickly. When a call's budget passes first, its outcome is
    unknown: `_on_timeout` (in a thread of its own, as it may go on to drive
    the saga) takes the saga from the blocked driver. A call that returns in
    time costs one registration and nothing else.
    """

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.watches: set[_Watch] = set()
        self.changed = threading.Condition()
        # when the thread wakes next by itself: a new watch wakes it only if it
        # is due earlier (a call that returns in time then costs no thread switch)
        self.wakes_at = 0.0
        self.thread = threading.Thread(target=self._loop, name="cleave-saga-monitor", daemon=True)
        self.thread.start()

    def watch(
        self, alias: str, saga_id: UUID, log: SagaStepLog, owner: str, budget: float | None
    ) -> _Watch:
        now = time.monotonic()
        entry = _Watch(
            alias=alias,
            saga_id=saga_id,
            log=log,
            owner=owner,
            budget=budget,
            next_beat=now + _beat_interval(),
            ends=None if budget is None else now + budget,
            monitor=self,
        )
        first = entry.next_beat if entry.ends is None else min(entry.next_beat, entry.ends)
        with self.changed:
            self.watches.add(entry)
            if first < self.wakes_at:
                self.changed.notify()
        return entry

    def forget(self, entry: _Watch) -> None:
        with self.changed:
            self.watches.discard(entry)

    def _loop(self) -> None:
        while True:
            try:
                self._round()
            except Exception:  # the monitor must outlive any one failure
                logger.exception("The saga monitor failed a round")
                time.sleep(0.1)

    def _round(self) -> None:
        while True:
            beats: list[_Watch] = []
            with self.changed:
                now = time.monotonic()
                due = [w for w in self.watches if w.ends is not None and w.ends <= now]
                for entry in due:
                    self.watches.discard(entry)
                for entry in self.watches:
                    if entry.next_beat <= now:
                        beats.append(entry)
                        entry.next_beat = now + _beat_interval()
                if not due and not beats:
                    # idle, it still wakes every beat interval: a new watch is
                    # then never due before the thread looks again
                    times = [now + _beat_interval()]
                    times += [w.next_beat for w in self.watches]
                    times += [w.ends for w in self.watches if w.ends is not None]
                    self.wakes_at = min(times)
                    self.changed.wait(max(0.0, self.wakes_at - now))
                    continue
                self.wakes_at = 0.0  # busy: every new watch notifies until it waits again
            for entry in due:
                threading.Thread(
                    target=_timeout_thread,
                    args=(entry,),
                    name=f"cleave-saga-timeout-{entry.saga_id}",
                    daemon=True,
                ).start()
            if beats:
                for entry in beats:
                    _beat(entry)
                # connections are not kept between rounds: a database restart
                # between two beats must not leave this thread a dead connection
                connections.close_all()


_threads: dict[type, Any] = {}
_threads_lock = threading.Lock()


def _per_process(kind: type) -> Any:
    """This process's one `kind` (a thread owner); a forked child, or a dead thread, starts anew."""
    current = _threads.get(kind)
    if current is None or current.pid != os.getpid() or not current.thread.is_alive():
        with _threads_lock:
            current = _threads.get(kind)
            if current is None or current.pid != os.getpid() or not current.thread.is_alive():
                current = _threads[kind] = kind()
    return current


def _monitor() -> _Monitor:
    """This process's monitor."""
    return _per_process(_Monitor)


def _beat_interval() -> float:
    return max(_lease_seconds() / 3, 0.05)


def _beat(entry: _Watch) -> None:
    now = timezone.now()
    try:
        SagaInstance.objects.using(entry.alias).filter(
            pk=entry.saga_id, lease_owner=entry.owner
        ).update(lease_expires_at=_lease_until(now), heartbeat_at=now)
    except Exception:  # the next beat tries again; the lease has two more thirds
        logger.warning("Saga %s: heartbeat failed", entry.saga_id, exc_info=True)


def _timeout_thread(entry: _Watch) -> None:
    try:
        _on_timeout(
            alias=entry.alias,
            saga_id=entry.saga_id,
            log_id=entry.log.pk,
            started_at=entry.log.started_at,
            owner=entry.owner,
            budget=entry.budget,
        )
    finally:
        connections.close_all()  # this thread's own connections


def _on_timeout(
    *, alias: str, saga_id: UUID, log_id: int, started_at: datetime, owner: str, budget: float
) -> None:
    """
    A step call outlived its budget: mark the attempt `timeout` and hand the saga on.

    The blocked driver loses its lease here; when its call finally returns,
    its fenced writes fail and it stops. The next driver settles the unknown
    outcome (query, else compensate the step too).
    """
    try:
        now = timezone.now()
        with transaction.atomic(using=alias):
            marked = (
                SagaStepLog.objects.using(alias)
                .filter(pk=log_id, status=Status.STARTED)
                .update(
                    status=Status.TIMEOUT,
                    error=f"no answer within {budget:.3g} s: the outcome is unknown",
                    finished_at=now,
                    duration_ms=(now - started_at).total_seconds() * 1000,
                )
            )
            if not marked:
                return
            handed = (
                SagaInstance.objects.using(alias)
                .filter(pk=saga_id, lease_owner=owner)
                .update(lease_owner="", lease_expires_at=None, heartbeat_at=now, updated_at=now)
            )
            if not handed:
                transaction.set_rollback(True, using=alias)
                return
        logger.warning("Saga %s: a step call exceeded %.3g s; settling it", saga_id, budget)
        get_runner().schedule(alias, saga_id)
    except Exception:
        logger.exception("Saga %s: the step timeout could not be handled", saga_id)


# --- waiting sagas (the in-process runner) --------------------------------------------------


class _Waker:
    """
    Drives sagas of this process when their `wake_at` comes: one daemon thread
    sleeping on a heap of due times, handing each due saga to a small pool so
    that one slow drive does not hold the others. A saga whose process dies
    while it waits is resumed by the recovery sweep once it is due.
    """

    def __init__(self) -> None:
        import heapq
        from concurrent.futures import ThreadPoolExecutor

        self._heapq = heapq
        self.pid = os.getpid()
        self.due: list[tuple[datetime, int, str, UUID]] = []
        self.counter = 0
        self.changed = threading.Condition()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cleave-saga-wake")
        self.thread = threading.Thread(target=self._loop, name="cleave-saga-waker", daemon=True)
        self.thread.start()

    def add(self, at: datetime, alias: str, saga_id: UUID) -> None:
        with self.changed:
            self.counter += 1
            self._heapq.heappush(self.due, (at, self.counter, alias, saga_id))
            self.changed.notify()

    def _loop(self) -> None:
        while True:
            with self.changed:
                while not self.due or self.due[0][0] > timezone.now():
                    timeout = None
                    if self.due:
                        timeout = (self.due[0][0] - timezone.now()).total_seconds()
                    self.changed.wait(timeout)
                _at, _n, alias, saga_id = self._heapq.heappop(self.due)
            self.pool.submit(_wake, alias, saga_id)


def _wake(alias: str, saga_id: UUID) -> None:
    try:
        run(alias, saga_id)
    except Exception:  # the saga keeps its state; recovery resumes it
        logger.exception("Saga %s stopped with an unexpected error", saga_id)
    finally:
        connections.close_all()  # this pool thread's own connections


def _waker() -> _Waker:
    """This process's waker."""
    return _per_process(_Waker)


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
        _schedule_after_commit(alias, saga_id)
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


def resumable(alias: str):
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
    runner = get_runner()
    ids = list(resumable(alias).values_list("id", flat=True)[:limit])
    for saga_id in ids:
        runner.schedule(alias, saga_id)
    return len(ids)
