"""
One call of a participant (an action, a compensation or a query): the context
the step sees, the trace span and the duration metric around it, and what it
returned.

`invoke` is the engine's one call seam: the driver looks it up here at each
call, so that a test may replace it to inject a fault (a crash before or after
a participant commits).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cleave.core.errors import is_technical
from cleave.observability import tracing
from cleave.observability.metrics import SAGA_STEP_DURATION
from cleave.sagas.definition import OutcomeUnknown, SagaContext, Step, StepFailed, StepFn
from cleave.sagas.models import SagaInstance, SagaStepLog

Kind = SagaStepLog.Kind


@dataclass(frozen=True)
class Returned:
    """An action's result together with the effects to run in its step's commit."""

    result: dict[str, Any]
    local_effects: tuple[Callable[[], dict[str, Any] | None], ...]


def invoke(fn: StepFn, instance: SagaInstance, step: Step, kind: str, attempt: int) -> Any:
    """
    Call one action, compensation or query.

    Returns the result; an action that asked for `with_step_commit` returns a
    `Returned` carrying the effects too.
    """
    ctx = SagaContext(instance, step=step.name, kind=kind, attempt=attempt)
    started = time.perf_counter()
    status = "error"
    try:
        # a child of the trace that started the saga, in whatever process runs it
        with tracing.span_from_traceparent(
            f"saga {instance.saga_type} {step.name} {kind}",
            instance.traceparent or tracing.current_traceparent(),
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
        return Returned(result or {}, tuple(ctx.local_effects))
    return result or {}
