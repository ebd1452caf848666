"""
The saga engine's names in one place, for callers that write `engine.run(...)`
(the `sagas` command, the admin, the Celery task, the recovery job, tests).

The engine itself lives in the modules beside this one (see the package's
docstring). A name rebound here is not seen by them: to replace a seam in a
test, patch it where it is looked up (`scheduling.get_runner`,
`calls.invoke`, `monitor._on_timeout`, `runners._waker`).
"""

from .calls import invoke as _invoke
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
    _definitions,
    definitions,
    get_definition,
    register,
)
from .driver import Started, run
from .lease import acquire
from .monitor import _on_timeout
from .runners import TASK_NAME, CeleryRunner, InProcessRunner, _waker, queue_for
from .scheduling import Runner, get_runner, runner_name
from .steplog import Superseded
from .waits import _wait_delay

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
    "_definitions",
    "_invoke",
    "_on_timeout",
    "_wait_delay",
    "_waker",
    "acquire",
    "compensate",
    "definitions",
    "dispatch_resumable",
    "get_definition",
    "get_runner",
    "queue_for",
    "register",
    "request_cancel",
    "resumable",
    "resume_all",
    "retry",
    "run",
    "runner_name",
    "start",
]
