"""
The transport interface: what carries committed outbox rows to subscribers,
the one this process uses, and the sweep. One setting switches them
(`CLEAVE_EVENT_TRANSPORT`); handlers, envelope and inbox do not change.

- `inprocess` (default, `cleave.messaging.inprocess`): right after the
  publisher's commit, this process runs every local subscriber, each in its
  own transaction on its own alias. A failing handler gets a `Delivery` row
  and is retried by the relay sweep with backoff; after the last attempt it
  is dead-lettered.
- `celery` (`cleave.messaging.broker.transport`): right after the commit, a
  relay thread of this process publishes the rows to the broker's topic
  exchange (marking them published only once the broker confirmed) and
  Celery workers consume one durable queue per context
  (`cleave.runtime.tasks.handle_event`). Failures are retried by the worker with
  backoff, then dead-lettered.

The concrete transports sit above this module and are loaded by name
(`get_transport()`), so nothing below them depends on the broker's client.
Both are swept (`cleave.messaging.relay.sweep`): what a crash left behind,
rows still pending after a grace period, and retries that are due.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

logger = logging.getLogger("cleave.events")


class PublishError(RuntimeError):
    """The broker did not accept (or confirm) every row; the rest stay pending."""


class Transport:
    """
    Contract: `committed()` is told of rows the moment their transaction
    commits; `deliver_pending()` and `retry_due()` are the sweep.
    """

    name = ""

    def carries(self, type_name: str) -> bool:
        """Whether an event of this type has somewhere to go (else it is written published)."""
        return True

    def committed(
        self, alias: str, event_ids: Iterable[UUID], envelopes: list | None = None
    ) -> None:
        """`envelopes`, when given, are the committed rows' envelopes (no need to read them)."""
        raise NotImplementedError(".committed() must be overridden")

    def deliver_pending(self, alias: str, *, limit: int = 500, older_than=None) -> int:
        """Deliver rows still pending in `alias` (crash recovery)."""
        raise NotImplementedError(".deliver_pending() must be overridden")

    def retry_due(self, alias: str) -> int:
        """Attempt again the failed deliveries of `alias` whose backoff has passed."""
        raise NotImplementedError(".retry_due() must be overridden")

    def redrive(self, deliveries: list) -> int:
        """Attempt these deliveries now (redriven dead letters, "attempt now"): they are due."""
        raise NotImplementedError(".redrive() must be overridden")


_TRANSPORTS = {
    "inprocess": "cleave.messaging.inprocess.InProcessTransport",
    "celery": "cleave.messaging.broker.transport.CeleryTransport",
}

_instance: Transport | None = None
_instance_key: str | None = None


def get_transport() -> Transport:
    global _instance, _instance_key
    key = settings.CLEAVE_EVENT_TRANSPORT
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
