"""
The saga's record: its instance row and its step log, and every write made to
them in starting and driving a saga.

Every attempt of every step is a row in the step log, written `started`
before the participant is called and finished, with the step's result, in the
same transaction that advances the instance. A `started` row found later
therefore means "the process died during this call".

A write is made one way: a function or a `StepLog` method returns a `Write`,
its statement built (its timestamps and lease renewal taken) there and then;
`.run()` executes it in whatever transaction is open and returns its verdict.
A driver mostly runs one at once (`steplog.save(current_step=2).run()`); a
step's completion builds its writes before its transaction opens and runs
them inside, so that the transaction holds its locks (on SQLite, the file's
write lock) only while they run.

A drive's writes are fenced: the instance is written only while the driver
still holds the lease, a `started` row finished only while it is still
`started` (the monitor may have timed the call out). A write that finds
itself fenced off raises `Superseded` from `.run()`.

Writes that are not a drive's live with their job: `lease` (take, renew,
release and hand on the lease) and `controls` (an operator's or a caller's
request to cancel, compensate or retry).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from django.utils import timezone

from cleave.core import db
from cleave.sagas.definition import SagaContext, SagaDefinition, Step
from cleave.sagas.lease import lease_until
from cleave.sagas.models import SagaInstance, SagaStepLog

Kind = SagaStepLog.Kind
Status = SagaStepLog.Status

T = TypeVar("T")


class Superseded(Exception):
    """This driver lost the saga (its step timed out, or its lease was taken over)."""


class Write(Generic[T]):
    """One write, built: `.run()` executes it and returns its verdict."""

    __slots__ = ("_perform", "_verdict")

    def __init__(self, perform: Callable[[], Any], verdict: Callable[[Any], T]) -> None:
        self._perform = perform
        self._verdict = verdict

    def run(self) -> T:
        """Execute in the caller's transaction, if any; return the verdict on what it did."""
        return self._verdict(self._perform())


def _nothing(_: Any) -> None:
    return None


def _in_memory(model: type[Any], alias: str, values: dict[str, Any], **extra: Any) -> Any:
    row = model(**extra, **values)
    row._state.adding = False
    row._state.db = alias
    return row


def ending(state: str) -> dict[str, Any]:
    """The fields that end a saga in `state`, its lease released."""
    return {
        "state": state,
        "completed_at": timezone.now(),
        "lease_owner": "",
        "lease_expires_at": None,
    }


# --- starting ---------------------------------------------------------------------------


def create(alias: str, values: dict[str, Any]) -> Write[SagaInstance]:
    """Insert a new instance; the verdict is the instance (in memory)."""
    statement = db.prepare_insert(SagaInstance, alias, values)
    return Write(statement.run, lambda _: _in_memory(SagaInstance, alias, values))


def log_done(
    alias: str, instance: SagaInstance, steps: Sequence[Step], now: datetime
) -> Write[None]:
    """Log the first `steps` as done by the transaction that started the saga."""
    rows = [
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
        for index, step in enumerate(steps)
    ]
    return Write(lambda: db.insert_many(SagaStepLog, alias, rows), _nothing)


def open_call(
    alias: str,
    instance: SagaInstance,
    definition: SagaDefinition,
    index: int,
    kind: str,
    attempt: int,
    now: datetime | None = None,
) -> Write[SagaStepLog]:
    """The `started` row of one call; the verdict is the row (in memory, with its id)."""
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
    statement = db.prepare_insert(SagaStepLog, alias, values, returning_pk=True)
    return Write(statement.run, lambda pk: _in_memory(SagaStepLog, alias, values, id=pk))


# --- the monitor ------------------------------------------------------------------------


def time_out(
    alias: str, log_id: int, *, started_at: datetime, budget: float, now: datetime
) -> Write[bool]:
    """Mark a call `timeout`, its outcome unknown; the verdict is False if it had finished."""
    rows = SagaStepLog.objects.using(alias).filter(pk=log_id, status=Status.STARTED)
    return Write(
        lambda: rows.update(
            status=Status.TIMEOUT,
            error=f"no answer within {budget:.3g} s: the outcome is unknown",
            finished_at=now,
            duration_ms=(now - started_at).total_seconds() * 1000,
        ),
        bool,
    )


# --- one drive --------------------------------------------------------------------------


class StepLog:
    """One drive's record of its saga: its writes, fenced by the lease of `owner`, and reads."""

    def __init__(
        self, alias: str, instance: SagaInstance, definition: SagaDefinition, owner: str
    ) -> None:
        self.alias = alias
        self.instance = instance
        self.definition = definition
        self.owner = owner
        self.saga_id = instance.id

    def save(self, *, fence_cancel: bool = False, **fields: Any) -> Write[bool]:
        """
        Update the instance, the lease renewed from now, while this driver holds the lease.

        The verdict raises Superseded if it no longer does. With `fence_cancel`
        it is False (nothing written) when a cancellation was requested
        meanwhile, so that the caller can honour it first.
        """
        now = timezone.now()
        fields.setdefault("lease_expires_at", lease_until(now))
        fields["heartbeat_at"] = now
        fields["updated_at"] = now
        where: dict[str, Any] = {"id": self.saga_id, "lease_owner": self.owner}
        if fence_cancel:
            where["cancel_requested"] = ""
        statement = db.prepare_update(SagaInstance, self.alias, fields, where=where)
        return Write(statement.run, lambda changed: self._saved(changed, fields))

    def _saved(self, changed: int, fields: dict[str, Any]) -> bool:
        if changed:
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

    def open(self, index: int, kind: str, attempt: int) -> Write[SagaStepLog]:
        """The `started` row of a call this driver is about to make."""
        return open_call(self.alias, self.instance, self.definition, index, kind, attempt)

    def finish(
        self, log: SagaStepLog, status: str, *, result: Any = None, error: str = ""
    ) -> Write[None]:
        """Finish a `started` row; the verdict raises Superseded if the monitor timed it out."""
        now = timezone.now()
        statement = db.prepare_update(
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
        return Write(statement.run, lambda changed: _finished(log, status, changed))

    def discard(self, log: SagaStepLog) -> Write[None]:
        """Delete a `started` row whose call will not be made after all."""
        rows = SagaStepLog.objects.using(self.alias).filter(pk=log.pk, status=Status.STARTED)
        return Write(rows.delete, _nothing)

    # --- reads ---------------------------------------------------------------------------

    def last(self) -> SagaStepLog | None:
        """The last row of the log."""
        return (
            SagaStepLog.objects.using(self.alias).filter(saga_id=self.saga_id).order_by("id").last()
        )

    def attempts(self, index: int, kind: str) -> int:
        """How many calls of `kind` step `index` has had."""
        return (
            SagaStepLog.objects.using(self.alias)
            .filter(saga_id=self.saga_id, step_index=index, kind=kind)
            .count()
        )

    def unavailable(self, index: int, kinds: tuple[str, ...]) -> int:
        """How many calls of `kinds` of step `index` met a technical failure."""
        return (
            SagaStepLog.objects.using(self.alias)
            .filter(
                saga_id=self.saga_id,
                step_index=index,
                kind__in=kinds,
                status=Status.UNAVAILABLE,
            )
            .count()
        )


def _finished(log: SagaStepLog, status: str, changed: int) -> None:
    if not changed:
        raise Superseded()
    log.status = status
