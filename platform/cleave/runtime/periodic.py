"""
Periodic jobs, written by hand because they must run in both deployments:

- embedded default: a daemon thread in each web process (`start_embedded()`,
  called from config/wsgi.py unless CLEAVE_EMBEDDED_SCHEDULER=off) or the
  foreground loop `python manage.py periodic`;
- Celery: beat sends `cleave.periodic.run` for each job (config/celery.py builds
  the schedule from this registry) to the job's queue.

Jobs register with `@periodic("name", every=seconds, context="label")` and must
be safe to run concurrently in several processes (leases, row locks,
skip-locked reads): more than one scheduler may run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from django.db import close_old_connections

from cleave.core.registry import is_local

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    func: Callable[[], object]
    every: float
    context: str | None = None

    def run(self) -> object:
        try:
            return self.func()
        except Exception:  # one failing job must not stop the scheduler
            logger.exception("Periodic job %s failed", self.name)
            return None


_jobs: dict[str, Job] = {}


def periodic(name: str, *, every: float, context: str | None = None):
    """Register the decorated function as a periodic job."""

    def decorate(func: Callable[[], object]) -> Callable[[], object]:
        _jobs[name] = Job(name=name, func=func, every=every, context=context)
        return func

    return decorate


def jobs() -> list[Job]:
    """The registered jobs whose context (if any) is served by this process."""
    return [job for job in _jobs.values() if job.context is None or is_local(job.context)]


def get(name: str) -> Job:
    try:
        return _jobs[name]
    except KeyError:
        raise LookupError(f"No periodic job {name!r}") from None


def run_forever(stop: threading.Event | None = None, *, tick: float = 0.5) -> None:
    """Run every job on its interval until `stop` is set."""
    stop = stop or threading.Event()
    due: dict[str, float] = {}
    while not stop.is_set():
        now = time.monotonic()
        for job in jobs():
            if now >= due.get(job.name, 0.0):
                # this thread lives long: never reuse a connection that a
                # database restart between two runs has broken
                close_old_connections()
                try:
                    job.run()
                finally:
                    close_old_connections()
                due[job.name] = time.monotonic() + job.every
        stop.wait(tick)


_thread: threading.Thread | None = None
_stop = threading.Event()


def start_embedded() -> None:
    """Start the scheduler thread in this process (once)."""
    global _thread
    if _thread is not None and _thread.is_alive():
        return
    _stop.clear()
    _thread = threading.Thread(
        target=run_forever, args=(_stop,), name="cleave-periodic", daemon=True
    )
    _thread.start()


def stop_embedded() -> None:
    _stop.set()
