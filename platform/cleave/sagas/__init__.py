"""
Durable orchestrated sagas.

Public surface::

    from cleave.sagas import SagaDefinition, Step, StepFailed, OutcomeUnknown, register, start
    from cleave.sagas import request_cancel, compensate, retry   # operator and caller controls
"""

from .engine import (
    OutcomeUnknown,
    SagaContext,
    SagaDefinition,
    Step,
    StepFailed,
    compensate,
    register,
    request_cancel,
    retry,
    start,
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
