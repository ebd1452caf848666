"""
The platform's tables; the router migrates them into every context alias, but
the record of context moves into `default`.
"""

from cleave.auth.revocations import TokenRevocation
from cleave.core.moves import ContextLocation, ContextMove
from cleave.messaging.models import InboxRecord, OutboxEvent
from cleave.sagas.models import SagaInstance, SagaStepLog

__all__ = [
    "ContextLocation",
    "ContextMove",
    "InboxRecord",
    "OutboxEvent",
    "SagaInstance",
    "SagaStepLog",
    "TokenRevocation",
]
