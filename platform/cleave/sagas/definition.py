"""
What a saga is: its steps, what a step may raise, what a step sees, and the
registry of definitions by name.

Nothing here touches the database beyond reading the instance a step is
given; everything else in `cleave.sagas` builds on these names.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

from cleave.sagas.models import SagaInstance, SagaStepLog

Kind = SagaStepLog.Kind


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
    without giving one. `subject_key` names the key of the saga's data that
    holds the id of what the saga is about (a checkout's order), and
    `subject_model` the admin's model of it (`app_label.model_name`): the
    admin shows, links and searches a saga by its subject. `records` names
    the other ids its data comes to hold, each with its admin's model
    (`(("payment_id", "payments.payment"),)`): the saga's page links them.
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
    subject_key: str = ""
    subject_model: str = ""
    records: tuple[tuple[str, str], ...] = ()

    def subject(self, data: dict[str, Any]) -> str | None:
        """The id of the saga's subject in `data`, or None (none declared, none there)."""
        value = data.get(self.subject_key) if self.subject_key and isinstance(data, dict) else None
        return None if value in (None, "") else str(value)

    def related(self, data: dict[str, Any]) -> list[tuple[str, str]]:
        """(model, id) of each record `records` names that `data` holds, in their order."""
        if not isinstance(data, dict):
            return []
        return [(model, str(data[key])) for key, model in self.records if data.get(key)]

    def step_index(self, name: str) -> int:
        for index, step in enumerate(self.steps):
            if step.name == name:
                return index
        raise LookupError(name)


_definitions: dict[str, SagaDefinition] = {}


def register(definition: SagaDefinition) -> SagaDefinition:
    _definitions[definition.name] = definition
    return definition


def unregister(name: str) -> SagaDefinition | None:
    """Forget the definition `name` (a test's, a scenario's); return it, or None."""
    return _definitions.pop(name, None)


def get_definition(name: str) -> SagaDefinition:
    try:
        return _definitions[name]
    except KeyError:
        raise LookupError(f"No saga definition named {name!r}") from None


def definitions() -> list[SagaDefinition]:
    return list(_definitions.values())
