"""
The relay: how committed outbox rows leave a process.

The fast path (the Celery transport): the process that commits an outbox row
hands its envelope to the transport right after the commit
(`transaction.on_commit`), which queues it for this process's `Outlet`, a
background thread (`cleave.core.threads`) that publishes whatever has
accumulated and marks it. Nothing polls.

The sweep (`sweep()`) recovers what that path could not do (the process died
between commit and publish, the broker was away) and sends retries that are
due, for either transport. It runs one way: as the periodic job
`cleave.events.relay_sweep` (`cleave.runtime.jobs`), which the scheduler of a
web process (the embedded default), Celery beat, `manage.py events relay` or a
Celery worker (`CLEAVE_EVENT_RELAY_IN_WORKER`) runs. Several may run at once:
rows are locked while published.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.conf import settings
from django.db import connections

from cleave.core.registry import all_contexts
from cleave.core.threads import Service
from cleave.messaging.transports import get_transport

logger = logging.getLogger("cleave.events")

__all__ = ["Outlet", "relay_grace", "sweep"]


def relay_grace() -> timedelta:
    """How old a pending row must be before a sweep takes it (the fast path owns younger ones)."""
    return timedelta(seconds=float(settings.CLEAVE_EVENT_RELAY_GRACE))


class Outlet(Service):
    """
    A thread that publishes what this process committed, off the request's path.

    `put()` queues the envelopes of one commit and returns at once; the thread
    takes everything queued so far (at most `limit` events), hands it to
    `publish(alias, envelopes)` per alias in commit order, and waits for more.
    Under load a round carries many events, so one broker round trip and one
    UPDATE serve them all; alone, an event goes out as soon as it is queued.

    Whatever goes wrong, the rows stay `pending` and the sweep publishes them
    after the grace period: `publish` failing, the queue full (`max_queued`,
    a broker that hangs), the process dying. At interpreter exit the queue is
    flushed for `exit_timeout` seconds at most (short-lived processes such as
    management commands). One per process: after a fork, make a new one.
    """

    name = "cleave-outlet"

    def __init__(
        self,
        publish: Callable[[str, list], object],
        *,
        limit: int = 200,
        max_queued: int = 10000,
        exit_timeout: float = 5.0,
    ) -> None:
        self._publish = publish
        self._limit = limit
        self._max_queued = max_queued
        self._exit_timeout = exit_timeout
        self._queue: deque[tuple[str, list]] = deque()
        self._busy = False
        self._changed = threading.Condition()
        super().__init__()
        atexit.register(self._at_exit)

    def wake(self) -> None:
        with self._changed:
            self._changed.notify_all()

    def put(self, alias: str, envelopes: list) -> bool:
        """Queue one commit's envelopes; False if the queue is full (the sweep takes them)."""
        with self._changed:
            if len(self._queue) >= self._max_queued:
                return False
            self._queue.append((alias, envelopes))
            self._changed.notify_all()
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far was handled; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._queue and not self._busy, timeout)

    def _at_exit(self) -> None:
        # atexit handlers are inherited by forked children, which have no thread
        if self.alive() and not self.flush(self._exit_timeout):
            logger.warning("Exiting with events not yet published; the relay sweep will")

    def _take(self) -> dict[str, list] | None:
        """Everything queued (up to the limit), per alias in queue order; None when stopping."""
        with self._changed:
            self._changed.wait_for(lambda: self._queue or self.stopping())
            if not self._queue:
                return None
            taken: dict[str, list] = {}
            count = 0
            while self._queue and count < self._limit:
                alias, envelopes = self._queue.popleft()
                taken.setdefault(alias, []).extend(envelopes)
                count += len(envelopes)
            self._busy = True
            return taken

    def run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            try:
                for alias, envelopes in taken.items():
                    try:
                        self._publish(alias, envelopes)
                    except Exception:  # the rows stay pending: the sweep publishes them
                        logger.exception("Publishing events of %s failed; the sweep will", alias)
                        # this thread's connection may be broken: open a fresh one next time
                        with contextlib.suppress(Exception):
                            connections[alias].close()
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()


def sweep(aliases: Iterable[str] | None = None, *, grace: timedelta | None = None) -> dict:
    """
    One relay sweep over every local alias: pending rows older than the grace
    period, then due retries. Returns counts per alias.
    """
    transport = get_transport()
    grace = relay_grace() if grace is None else grace
    counts = {}
    for alias in aliases if aliases is not None else [c.database for c in all_contexts()]:
        counts[alias] = {"published": 0, "retried": 0}
        try:
            counts[alias]["published"] = transport.deliver_pending(alias, older_than=grace)
        except Exception:
            logger.exception("Relay sweep of %s failed", alias)
        try:
            counts[alias]["retried"] = transport.retry_due(alias)
        except Exception:
            logger.exception("Retrying due deliveries of %s failed", alias)
    return counts
