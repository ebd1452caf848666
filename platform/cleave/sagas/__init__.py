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

This package is the engine's one public surface::

    from cleave import sagas
    sagas.register(SagaDefinition(...)); sagas.start(...); sagas.run(alias, saga_id)
    sagas.request_cancel(...); sagas.compensate(...); sagas.retry(...)
    sagas.prune(alias, older_than=timedelta(days=90))

The modules, each depending only on those below it (an import-linter
`layers` contract keeps it so):

- `controls`: start, cancel, compensate, retry; the recovery sweep;
- `retention` (beside `controls`): prune the sagas that finished long ago;
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
- `definition`: steps, definitions and their registry, what a step sees.

A name bound here is not seen by the modules: to replace a seam in a test,
patch it where it is looked up (`scheduling.get_runner`, `calls.invoke`,
`monitor.on_timeout`, `runners.waker`).
"""

from cleave.sagas.calls import invoke
from cleave.sagas.controls import (
    compensate,
    dispatch_resumable,
    request_cancel,
    resumable,
    resume_all,
    retry,
    start,
)
from cleave.sagas.definition import (
    OutcomeUnknown,
    SagaContext,
    SagaDefinition,
    Step,
    StepFailed,
    StepFn,
    definitions,
    get_definition,
    register,
    unregister,
)
from cleave.sagas.driver import Started, run
from cleave.sagas.lease import acquire
from cleave.sagas.monitor import on_timeout
from cleave.sagas.retention import PruneReport, prune
from cleave.sagas.runners import TASK_NAME, CeleryRunner, InProcessRunner, queue_for, waker
from cleave.sagas.scheduling import Runner, get_runner, runner_name
from cleave.sagas.steplog import Superseded
from cleave.sagas.waits import wait_delay

__all__ = [
    "TASK_NAME",
    "CeleryRunner",
    "InProcessRunner",
    "OutcomeUnknown",
    "PruneReport",
    "Runner",
    "SagaContext",
    "SagaDefinition",
    "Started",
    "Step",
    "StepFailed",
    "StepFn",
    "Superseded",
    "acquire",
    "compensate",
    "definitions",
    "dispatch_resumable",
    "get_definition",
    "get_runner",
    "invoke",
    "on_timeout",
    "prune",
    "queue_for",
    "register",
    "request_cancel",
    "resumable",
    "resume_all",
    "retry",
    "run",
    "runner_name",
    "start",
    "unregister",
    "wait_delay",
    "waker",
]
