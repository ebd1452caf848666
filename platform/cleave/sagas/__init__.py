"""
Durable orchestrated sagas.

Public surface::

    from cleave.sagas import SagaDefinition, Step, StepFailed, register, start
"""

from .engine import SagaContext, SagaDefinition, Step, StepFailed, register, start

__all__ = ["SagaContext", "SagaDefinition", "Step", "StepFailed", "register", "start"]
