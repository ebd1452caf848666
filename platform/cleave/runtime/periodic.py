"""
Periodic jobs, written by hand because they must run in both deployments:

- embedded default: the scheduler runs in a background thread of each web
  process (`start()`, called by the web role's bootstrap unless
  CLEAVE_EMBEDDED_SCHEDULER=off), or in the foreground (`python manage.py
  periodic`);
- Celery: beat sends `cleave.periodic.run` for each job (config/celery.py builds
  the schedule from this registry) to the job's queue.

The relay sweep is one of these jobs (`cleave.events.relay_sweep`), and runs
only this way: `manage.py events relay` and a Celery worker's relay
(`CLEAVE_EVENT_RELAY_IN_WORKER`) run the scheduler for that one job.

Jobs register with `@periodic("name", every=seconds, context="label")` and must
be safe to run concurrently in several processes (leases, row locks,
skip-locked reads): more than one scheduler may run at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.db import close_old_connections

from cleave.core import threads
from cleave.core.registry import is_local
from cleave.core.threads import Service

logger = logging.getLogger(__name__)

RELAY_SWEEP = "cleave.events.relay_sweep"


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


OnResult = Callable[[Job, Any], None]


def run_forever(
    stop: threading.Event | None = None,
    *,
    only: Iterable[str] | None = None,
    every: float | None = None,
    on_result: OnResult | None = None,
    tick: float = 0.5,
) -> None:
    """
    Run the jobs on their intervals until `stop` is set: every job of this
    process, or those named in `only`; `every` overrides their interval.
    """
    stop = stop or threading.Event()
    named = None if only is None else set(only)
    due: dict[str, float] = {}
    while not stop.is_set():
        now = time.monotonic()
        for job in jobs():
            if named is not None and job.name not in named:
                continue
            if now >= due.get(job.name, 0.0):
                # this thread lives long: never reuse a connection that a
                # database restart between two runs has broken
                close_old_connections()
                try:
                    result = job.run()
                finally:
                    close_old_connections()
                if on_result is not None:
                    on_result(job, result)
                due[job.name] = time.monotonic() + (job.every if every is None else every)
        stop.wait(tick)


class Scheduler(Service):
    """The scheduler in a background thread of this process (see `run_forever`)."""

    name = "cleave-periodic"

    def __init__(self, only: Iterable[str] | None = None) -> None:
        self.only = None if only is None else tuple(only)
        super().__init__()

    def run(self) -> None:
        run_forever(self._stopping, only=self.only)


def start(only: Iterable[str] | None = None) -> Scheduler:
    """This process's scheduler thread (started once; anew in a forked child)."""
    return threads.per_process(Scheduler, only)


def stop() -> None:
    threads.stop(Scheduler)
