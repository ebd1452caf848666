"""
The relay: the fast path's thread and the sweep loop.

Fast path (Celery transport): the process that commits an outbox row hands
its envelope to the transport right after the commit (`transaction.on_commit`),
which queues it for this process's `Outlet` thread (`cleave.events.outlet`)
and returns; the thread publishes whatever has accumulated and marks it.
Nothing polls.

The sweep recovers what that path could not do (the process died between
commit and publish, the broker was away) and sends retries that are due. It
runs as `python manage.py events relay`, as the periodic job
`cleave.events.relay_sweep` (Celery beat, or the embedded scheduler of the web
process), or in a thread of each Celery worker (`CLEAVE_EVENT_RELAY_IN_WORKER`).
Several may run at once: rows are locked while published.
"""

from __future__ import annotations

import logging
import threading

from django.conf import settings
from django.db import close_old_connections

from cleave.messaging.transports import sweep

logger = logging.getLogger("cleave.events")

__all__ = ["run_forever", "start_thread", "sweep"]


def interval() -> float:
    return float(settings.CLEAVE_EVENT_RELAY_INTERVAL)


def run_forever(stop: threading.Event | None = None, *, every: float | None = None, on_sweep=None):
    """Sweep every `every` seconds until `stop` is set."""
    stop = stop or threading.Event()
    every = interval() if every is None else every
    while not stop.is_set():
        # connections are not kept between sweeps: a database restart between
        # two sweeps must not leave this loop with a dead connection
        close_old_connections()
        try:
            counts = sweep()
            if on_sweep is not None:
                on_sweep(counts)
        except Exception:  # one failing sweep must not stop the relay
            logger.exception("Relay sweep failed")
        finally:
            close_old_connections()
        stop.wait(every)


_thread: threading.Thread | None = None
_stop = threading.Event()


def start_thread() -> threading.Thread:
    """Run the sweep loop in a daemon thread of this process (once)."""
    global _thread
    if _thread is None or not _thread.is_alive():
        _stop.clear()
        _thread = threading.Thread(
            target=run_forever, args=(_stop,), name="cleave-relay", daemon=True
        )
        _thread.start()
    return _thread
