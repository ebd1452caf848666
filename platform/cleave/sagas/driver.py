"""
The driver: one process's drive of one saga, step by step, while it holds the
lease (`run` takes the lease and drives).

How a step ends:

- it returns a dict: merged into the saga's data; the next step begins;
- it raises `StepFailed(reason)`: a participant refused, nothing took effect;
  the completed steps are compensated in reverse order;
- it raises `OutcomeUnknown`, any other exception (after `retries` attempts
  with exponential backoff and jitter), or it exceeds its `timeout`: the step
  *may* have taken effect. The step's `query` (if any) asks the participant by
  idempotency key; if that cannot settle it, the step is compensated too, so
  every compensation must be idempotent and safe when its action never ran.

A *technical* failure (a participant unavailable, its circuit open, a 5xx,
a database at its limit) is neither a refusal nor a bug: the saga waits and
is driven again later (`waits`). An action keeps waiting until the saga's
deadline; then the saga compensates, the waiting step included (it may have
taken effect), with the definition's `unavailable_reason`.

Other errors in a compensation (bugs) are retried with backoff; when those
retries are exhausted the saga is `failed` and waits for an operator.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from cleave.core import flow
from cleave.core.backoff import delay
from cleave.core.errors import is_technical
from cleave.observability.metrics import SAGAS_FINISHED
from cleave.sagas import calls
from cleave.sagas.definition import OutcomeUnknown, SagaContext, Step, StepFailed, get_definition
from cleave.sagas.lease import acquire, new_owner, release
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.sagas.monitor import Watch, watch
from cleave.sagas.steplog import StepLog, Superseded, ending
from cleave.sagas.waits import Wait, wait

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")

State = SagaInstance.State
Kind = SagaStepLog.Kind
Status = SagaStepLog.Status


@dataclass
class Started:
    """
    A saga started by this process for the in-process runner, leased in the
    starting transaction: after the commit the runner drives it from here
    without reading it back or taking the lease again.
    """

    alias: str
    instance: SagaInstance
    owner: str
    prepared: SagaStepLog | None


def run(alias: str, saga_id: UUID, *, started: Started | None = None) -> SagaInstance:
    """
    Drive one saga as far as it goes now; return its persisted state.

    `started`: the saga was just started and leased by this process (the
    in-process runner, right after the starting commit).
    """
    owner = started.owner if started is not None else new_owner()
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
                release(alias, saga_id, owner)
        if driver is not None and driver.instance.is_final:
            return driver.instance  # exactly as this driver persisted it
    return SagaInstance.objects.using(alias).get(pk=saga_id)


def _backoff(attempt: int) -> float:
    """Before an in-place retry of a step that raised a bug: the platform's one backoff."""
    return delay(
        attempt,
        base=float(settings.CLEAVE_SAGA_RETRY_BASE),
        cap=float(settings.CLEAVE_SAGA_WAIT_MAX),
    )


@dataclass
class _Outcome:
    """What an unknown outcome turned out to be."""

    result: dict[str, Any] | None = None  # the action took effect with this result
    refusal: StepFailed | None = None  # the participant refused
    absent: bool = False  # the action did not take effect


class _Driver:
    """One process's drive of one saga, while it holds the lease as `owner`."""

    def __init__(
        self, alias: str, saga_id: UUID, owner: str, *, started: Started | None = None
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
        # every write of this drive, fenced by its lease
        self.steplog = StepLog(alias, self.instance, self.definition, owner)

    def _start_log(self, index: int, kind: str, attempt: int) -> SagaStepLog:
        """Write a `started` row (and renew the lease) before calling a participant."""
        with transaction.atomic(using=self.alias):
            self.steplog.save().run()
            return self.steplog.open(index, kind, attempt).run()

    def _discard(self, prepared: SagaStepLog | None) -> None:
        """Drop a `started` row whose call will not be made after all."""
        if prepared is not None:
            self.steplog.discard(prepared).run()

    def _watch(self, log: SagaStepLog, budget: float | None) -> Watch:
        return watch(self.alias, self.saga_id, log, self.owner, budget)

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
                except Wait as failure:
                    prepared, self.prepared = self.prepared, None
                    return wait(self.steplog, prepared, failure)

    def _open_attempt(self, index: int, kinds: tuple[str, ...]) -> SagaStepLog | None:
        """The last log row if it is a started, timed-out or unavailable call of step `index`."""
        last = self.steplog.last()
        if (
            last is not None
            and last.step_index == index
            and last.kind in kinds
            and last.status in (Status.STARTED, Status.TIMEOUT, Status.UNAVAILABLE)
        ):
            return last
        return None

    def _interrupted(self, log: SagaStepLog) -> None:
        self.steplog.finish(
            log, Status.ERROR, error="interrupted: the process making this call stopped"
        ).run()

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
                result = calls.invoke(step.action, self.instance, step, Kind.ACTION, attempt)
                if isinstance(result, calls.Returned):
                    # the action's local writes and the step's result: one commit
                    with transaction.atomic(using=self.alias):
                        data = dict(result.result)
                        for effect in result.local_effects:
                            data.update(effect() or {})
                        return self._complete_step(log, index, data)
            except Superseded:
                raise
            except StepFailed as exc:
                self.steplog.finish(log, Status.FAILED, error=f"{exc.reason}: {exc.detail}").run()
                return self._begin_compensation(index, exc.reason, exc.detail, data=exc.data)
            except OutcomeUnknown as exc:
                self.steplog.finish(log, Status.ERROR, error=f"outcome unknown: {exc}").run()
                reason = exc.reason or step.error_reason or self.definition.error_reason
                return self._settle_unknown(step, index, reason, str(exc), data=exc.data)
            except Exception as exc:
                if is_technical(exc):
                    self.steplog.finish(
                        log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}"
                    ).run()
                    if self._past_deadline():
                        detail = f"saga deadline passed: {exc}"
                        # the call may have taken effect: compensate this step too
                        return self._begin_compensation(
                            index + 1, self.definition.unavailable_reason, detail
                        )
                    raise Wait(exc, index, Kind.ACTION) from exc
                self.steplog.finish(log, Status.ERROR, error=traceback.format_exc()).run()
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

    def _past_deadline(self) -> bool:
        return bool(self.instance.deadline and timezone.now() >= self.instance.deadline)

    def _complete_step(self, log: SagaStepLog, index: int, result: dict[str, Any]) -> None:
        """
        Persist the step's result and advance, in one commit: with the next
        step's log row opened, or, after the last step, the saga completed.

        The writes are built before the transaction opens, so that it holds
        its locks (on SQLite, the file's write lock) only while they run.
        """
        steps = self.definition.steps
        data = {**self.instance.data, **result}
        nxt = index + 1
        last = nxt >= len(steps) and self.definition.on_finished is None
        finish = self.steplog.finish(log, Status.SUCCEEDED, result=result)
        end = ending(State.COMPLETED) if last else {}
        if self.instance.last_error or self.instance.wake_at:
            end.update(last_error="", wake_at=None)
        save = self.steplog.save(fence_cancel=True, data=data, current_step=nxt, **end)
        opening = None
        if not last and nxt < len(steps) and not self._past_deadline():
            opening = self.steplog.open(nxt, Kind.ACTION, 1)
        # inside an action's own commit (`with_step_commit`) it adds to it, no savepoint
        with transaction.atomic(using=self.alias, savepoint=False):
            finish.run()
            # a cancellation that arrives as the step completes still counts
            if not save.run():
                # it did: record the result, then honour it
                self.steplog.save(data=data, current_step=nxt).run()
            elif opening is not None:
                self.prepared = opening.run()
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
            self.steplog.save(data={**self.instance.data, **data}).run()
        outcome = self._query(step, index)
        if outcome.result is not None:
            with transaction.atomic(using=self.alias):
                self.steplog.save(
                    data={**self.instance.data, **outcome.result}, current_step=index + 1
                ).run()
            return None
        if outcome.refusal is not None:
            exc = outcome.refusal
            return self._begin_compensation(index, exc.reason, exc.detail, data=exc.data)
        if outcome.absent and self._attempts(index) <= step.retries and not self._past_deadline():
            return None  # it did not take effect: the next pass calls the action again
        return self._begin_compensation(index + 1, reason, detail)

    def _attempts(self, index: int) -> int:
        return self.steplog.attempts(index, Kind.ACTION)

    def _query(self, step: Step, index: int) -> _Outcome:
        if step.query is None:
            return _Outcome()
        for attempt in range(1, step.retries + 2):
            log = self._start_log(index, Kind.QUERY, attempt)
            watchdog = self._watch(log, None)
            try:
                found = calls.invoke(step.query, self.instance, step, Kind.QUERY, attempt)
            except StepFailed as exc:
                self.steplog.finish(log, Status.FAILED, error=f"{exc.reason}: {exc.detail}").run()
                return _Outcome(refusal=exc)
            except OutcomeUnknown as exc:
                self.steplog.finish(log, Status.ERROR, error=f"outcome unknown: {exc}").run()
                return _Outcome()
            except Exception as exc:
                if is_technical(exc) and not self._past_deadline():
                    # ask again later; the step stays in doubt meanwhile
                    self.steplog.finish(
                        log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}"
                    ).run()
                    raise Wait(exc, index, Kind.QUERY) from exc
                self.steplog.finish(log, Status.ERROR, error=traceback.format_exc()).run()
                if attempt <= step.retries:
                    time.sleep(_backoff(attempt))
                    continue
                return _Outcome()
            finally:
                watchdog.stop()
            self.steplog.finish(log, Status.SUCCEEDED, result=found).run()
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
            self.steplog.save(
                state=State.COMPENSATING,
                failure_reason=reason,
                current_step=upto,
                data={
                    **self.instance.data,
                    **(data or {}),
                    "failure_detail": (detail or "")[:1000],
                },
            ).run()
        self.prepared = None
        logger.info("Saga %s compensating after %s: %s", self.saga_id, reason, detail)

    def _compensate_next(self) -> None:
        if self.instance.current_step == 0:
            return self._finish(State.COMPENSATED)
        index = self.instance.current_step - 1
        step = self.definition.steps[index]
        if step.compensation is None:
            self.steplog.save(current_step=index).run()
            return None
        open_attempt = self._open_attempt(index, (Kind.COMPENSATION,))
        if open_attempt is not None and open_attempt.status == Status.STARTED:
            self._interrupted(open_attempt)
        attempt = self.steplog.attempts(index, Kind.COMPENSATION)
        tries = 0
        while True:
            attempt += 1
            tries += 1
            log = self._start_log(index, Kind.COMPENSATION, attempt)
            watchdog = self._watch(log, None)
            try:
                result = calls.invoke(
                    step.compensation, self.instance, step, Kind.COMPENSATION, attempt
                )
            except Exception as exc:
                if is_technical(exc):
                    # compensations are idempotent: retried until they succeed
                    self.steplog.finish(
                        log, Status.UNAVAILABLE, error=f"{type(exc).__name__}: {exc}"
                    ).run()
                    raise Wait(exc, index, Kind.COMPENSATION) from exc
                self.steplog.finish(log, Status.ERROR, error=traceback.format_exc()).run()
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
                self.steplog.finish(log, Status.SUCCEEDED, result=result).run()
                self.steplog.save(
                    data={**self.instance.data, **result}, current_step=index, **cleared
                ).run()
            return None

    def _finish(self, state: str) -> None:
        with transaction.atomic(using=self.alias):
            finished = self.steplog.save(
                # a cancellation that arrives as the saga completes still counts
                fence_cancel=state == State.COMPLETED,
                **ending(state),
            ).run()
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
