"""
The relay's fast path: a thread per process that publishes what this process
has just committed, off the request's path (the Celery transport's
`committed()` hands it the envelopes). The sweep loop that recovers what this
path could not do is `cleave.events.relay`.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from collections import deque
from collections.abc import Callable

from django.db import connections

logger = logging.getLogger("cleave.events")

__all__ = ["Outlet"]


class Outlet:
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

    def __init__(
        self,
        publish: Callable[[str, list], object],
        *,
        limit: int = 200,
        max_queued: int = 10000,
        exit_timeout: float = 5.0,
    ) -> None:
        self.pid = os.getpid()
        self._publish = publish
        self._limit = limit
        self._max_queued = max_queued
        self._exit_timeout = exit_timeout
        self._queue: deque[tuple[str, list]] = deque()
        self._busy = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="cleave-outlet", daemon=True)
        self._thread.start()
        atexit.register(self._at_exit)

    def alive(self) -> bool:
        """Whether this is the thread of this process, still running."""
        return os.getpid() == self.pid and self._thread.is_alive()

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

    def _take(self) -> dict[str, list]:
        """Everything queued (up to the limit), per alias in queue order."""
        with self._changed:
            self._changed.wait_for(lambda: self._queue)
            taken: dict[str, list] = {}
            count = 0
            while self._queue and count < self._limit:
                alias, envelopes = self._queue.popleft()
                taken.setdefault(alias, []).extend(envelopes)
                count += len(envelopes)
            self._busy = True
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
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
