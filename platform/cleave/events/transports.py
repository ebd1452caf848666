"""
Transports carry committed outbox rows to subscribers.

`inprocess` (default) runs the subscribed handlers right after the publisher's
commit, in the same process, each in its own transaction. A failed handler
leaves the outbox row pending with its error, so the relay (`manage.py events
relay`) delivers it again; handlers that already applied it are skipped by the
inbox. The `celery` transport (CLEAVE_EVENT_TRANSPORT=celery) publishes rows to a
broker instead; handlers do not change.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils import timezone
from django.utils.module_loading import import_string

from . import bus

logger = logging.getLogger(__name__)


class Transport:
    """Contract: `committed()` is told of rows the moment their transaction commits."""

    def committed(self, alias: str, event_ids: Iterable[UUID]) -> None:
        raise NotImplementedError(".committed() must be overridden")

    def deliver_pending(self, alias: str, *, limit: int = 500) -> int:
        """Deliver rows still pending in `alias` (crash recovery, retries)."""
        raise NotImplementedError(".deliver_pending() must be overridden")


class InProcessTransport(Transport):
    def committed(self, alias: str, event_ids: Iterable[UUID]) -> None:
        for event_id in event_ids:
            try:
                deliver_locally(alias, event_id)
            except Exception:  # never let delivery break the publisher's request
                logger.exception("In-process delivery of %s failed", event_id)

    def deliver_pending(self, alias: str, *, limit: int = 500) -> int:
        from .models import OutboxEvent

        ids = list(
            OutboxEvent.objects.using(alias)
            .filter(status=OutboxEvent.Status.PENDING)
            .order_by("occurred_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        self.committed(alias, ids)
        return len(ids)


def deliver_locally(alias: str, event_id: UUID) -> bool:
    """
    Run every local subscriber of one outbox row; mark it published if all succeed.

    Returns True when the row is (now) published.
    """
    from .models import OutboxEvent

    row = OutboxEvent.objects.using(alias).filter(pk=event_id).first()
    if row is None or row.status == OutboxEvent.Status.PUBLISHED:
        return row is not None
    envelope = row.envelope()
    errors: list[str] = []
    for sub in bus.subscriptions_for(envelope.type):
        try:
            bus.apply(sub, envelope)
        except Exception as exc:
            logger.warning(
                "Handler %s failed on %s %s: %s", sub.name, envelope.type, envelope.id, exc
            )
            errors.append(f"{sub.name}: {type(exc).__name__}: {exc}\n{traceback.format_exc()}")
    with transaction.atomic(using=alias):
        if errors:
            OutboxEvent.objects.using(alias).filter(pk=event_id).update(
                attempts=row.attempts + 1, last_error="\n".join(errors)[:20000]
            )
            return False
        OutboxEvent.objects.using(alias).filter(pk=event_id).update(
            status=OutboxEvent.Status.PUBLISHED,
            published_at=timezone.now(),
            attempts=row.attempts + 1,
            last_error="",
        )
    return True


_TRANSPORTS = {
    "inprocess": "cleave.events.transports.InProcessTransport",
}

_instance: Transport | None = None
_instance_key: str | None = None


def get_transport() -> Transport:
    global _instance, _instance_key
    key = getattr(settings, "CLEAVE_EVENT_TRANSPORT", "inprocess")
    if _instance is None or _instance_key != key:
        try:
            path = _TRANSPORTS[key]
        except KeyError:
            raise ImproperlyConfigured(
                f"CLEAVE_EVENT_TRANSPORT={key!r} is not one of {sorted(_TRANSPORTS)}"
            ) from None
        _instance = import_string(path)()
        _instance_key = key
    return _instance
