"""The platform's tables; the router migrates them into every context alias."""

from cleave.auth.revocations import TokenRevocation
from cleave.messaging.models import InboxRecord, OutboxEvent
from cleave.sagas.models import SagaInstance, SagaStepLog

__all__ = ["InboxRecord", "OutboxEvent", "SagaInstance", "SagaStepLog", "TokenRevocation"]
