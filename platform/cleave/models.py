"""The platform's tables; the router migrates them into every context alias."""

from cleave.events.models import InboxRecord, OutboxEvent
from cleave.revocations import TokenRevocation
from cleave.sagas.models import SagaInstance, SagaStepLog

__all__ = ["InboxRecord", "OutboxEvent", "SagaInstance", "SagaStepLog", "TokenRevocation"]
