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

Public surface::

    from cleave.sagas import SagaDefinition, Step, StepFailed, OutcomeUnknown, register, start
    from cleave.sagas import request_cancel, compensate, retry   # operator and caller controls

The modules, each depending only on those below it (an import-linter
`layers` contract keeps it so):

- `controls`: start, cancel, compensate, retry; the recovery sweep;
- `runners` (beside `controls`): drive a saga in this process, waking the
  waiting ones, or by Celery;
- `driver`: one drive of one saga, step by step, while it holds the lease;
- `waits`: waiting, without a thread, after a technical failure;
- `monitor`: step timeouts and the heartbeat;
- `calls`: one call of a participant (the seam tests inject faults at);
- `scheduling`: the runner interface and the choice of runner;
- `steplog`: every write `start` and a drive make to the instance and its step
  log, one way (`Write`);
- `lease`: who drives a saga, until when;
- `definition`: steps, definitions and their registry, what a step sees;
- `threads`: the per-process background threads.

`engine` gathers the names for callers that write `engine.run(...)`.
"""

from .controls import compensate, request_cancel, retry, start
from .definition import (
    OutcomeUnknown,
    SagaContext,
    SagaDefinition,
    Step,
    StepFailed,
    register,
)

__all__ = [
    "OutcomeUnknown",
    "SagaContext",
    "SagaDefinition",
    "Step",
    "StepFailed",
    "compensate",
    "register",
    "request_cancel",
    "retry",
    "start",
]
