"""Helpers shared by the platform tests."""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.utils import timezone

from cleave.messaging.models import DeadLetter
from cleave.sagas.models import SagaInstance


def user_created_data(**overrides) -> dict:
    """A valid `user.created` payload."""
    return {
        "customer_id": str(uuid.uuid4()),
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "name": "Ada Lovelace",
        "created_at": "2025-01-01T12:00:00+00:00",
        **overrides,
    }


def saga(alias: str = "orders", *, quiet_for: float = 0, **values) -> SagaInstance:
    """A checkout saga in `alias`, last touched `quiet_for` seconds ago."""
    created = SagaInstance.objects.using(alias).create(
        **{"saga_type": "checkout", "context": alias, "correlation_id": uuid.uuid4().hex, **values}
    )
    SagaInstance.objects.using(alias).filter(pk=created.pk).update(
        updated_at=timezone.now() - timedelta(seconds=quiet_for)
    )
    return created


def dead_letter(alias: str, status=DeadLetter.Status.DEAD) -> DeadLetter:
    """A dead letter of analytics' handler for `order.placed`, in `alias`."""
    return DeadLetter.objects.using(alias).create(
        event_id=uuid.uuid4(),
        handler="analytics.handlers.count",
        context=alias,
        event_type="order.placed",
        envelope={},
        reason=DeadLetter.Reason.HANDLER_FAILED,
        error="Traceback...\nKeyError: 'total'",
        status=status,
    )
