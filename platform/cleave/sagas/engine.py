"""
The saga engine's names in one place, for callers that write `engine.run(...)`
(the `sagas` command, the admin, the Celery task, the recovery job, tests).

The engine itself lives in the modules beside this one (see the package's
docstring). A name rebound here is not seen by them: to replace a seam in a
test, patch it where it is looked up (`scheduling.get_runner`,
`calls.invoke`, `monitor.on_timeout`, `runners.waker`). These seams are
public on purpose: a test wraps them, it never reaches into the engine.
"""

from .calls import invoke
from .controls import (
    compensate,
    dispatch_resumable,
    request_cancel,
    resumable,
    resume_all,
    retry,
    start,
)
from .definition import (
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
from .driver import Started, run
from .lease import acquire
from .monitor import on_timeout
from .runners import TASK_NAME, CeleryRunner, InProcessRunner, queue_for, waker
from .scheduling import Runner, get_runner, runner_name
from .steplog import Superseded
from .waits import wait_delay

__all__ = [
    "TASK_NAME",
    "CeleryRunner",
    "InProcessRunner",
    "OutcomeUnknown",
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
