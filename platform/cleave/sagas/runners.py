"""
The runners, which drive a saga when the engine asks (`scheduling.Runner`):
in this process (now, or at a time by the waker's timer thread), or by
sending the Celery task `cleave.sagas.run` to the owning context's queue.
"""

from __future__ import annotations

import heapq
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import connections
from django.utils import timezone

from cleave.core.threads import Service, per_process
from cleave.messaging.broker.publisher import celery_app
from cleave.messaging.broker.topology import queue_name
from cleave.sagas.driver import Started, run
from cleave.sagas.models import SagaInstance

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")

TASK_NAME = "cleave.sagas.run"


class InProcessRunner:
    """The embedded default: drive the saga in this process, now (or at `at`, by a timer)."""

    drives_here = True

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None:
        if at is not None and at > timezone.now():
            waker().add(at, alias, saga_id)
            return
        try:
            run(alias, saga_id)
        except Exception:  # the saga keeps its lease; recovery resumes it
            logger.exception("Saga %s stopped with an unexpected error", saga_id)

    def drive_started(self, started: Started) -> None:
        """Drive a saga this process started and leased in the committed transaction."""
        try:
            run(started.alias, started.instance.id, started=started)
        except Exception:  # the saga keeps its lease; recovery resumes it when it expires
            logger.exception("Saga %s stopped with an unexpected error", started.instance.id)


class CeleryRunner:
    """
    Send the task `cleave.sagas.run` to the owning context's queue.

    A broker that cannot take the task never fails the caller: the saga is
    committed (a checkout answers 202 for it), and the periodic resume
    (`cleave.sagas.resume`) drives it once it is due and unheld, as it does a
    saga whose process died.
    """

    drives_here = False

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None:
        saga = SagaInstance.objects.using(alias).only("context").filter(pk=saga_id).first()
        if saga is None:
            return
        options: dict[str, Any] = {"queue": queue_for(saga.context)}
        if at is not None and at > timezone.now():
            options["countdown"] = (at - timezone.now()).total_seconds()
        try:
            # the same app, with the same queue declarations, that carries the events
            celery_app().send_task(TASK_NAME, args=(alias, str(saga_id)), **options)
        except Exception as exc:  # kombu's OperationalError, a refused or reset socket...
            logger.warning(
                "Saga %s was not handed to the broker (%s: %s); the periodic resume drives it",
                saga_id,
                type(exc).__name__,
                exc,
            )


def queue_for(context: str) -> str:
    """A context's Celery queue: the one its event handlers use."""
    return queue_name(context)


# --- waiting sagas (the in-process runner) --------------------------------------------------


class _Waker(Service):
    """
    Drives sagas of this process when their `wake_at` comes: one daemon thread
    sleeping on a heap of due times, handing each due saga to a small pool so
    that one slow drive does not hold the others. A saga whose process dies
    while it waits is resumed by the recovery sweep once it is due.
    """

    name = "cleave-saga-waker"

    def __init__(self) -> None:
        self.due: list[tuple[datetime, int, str, UUID]] = []
        self.counter = 0
        self.changed = threading.Condition()
        self.pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="cleave-saga-wake")
        super().__init__()

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def add(self, at: datetime, alias: str, saga_id: UUID) -> None:
        with self.changed:
            self.counter += 1
            heapq.heappush(self.due, (at, self.counter, alias, saga_id))
            self.changed.notify()

    def run(self) -> None:
        while not self.stopping():
            with self.changed:
                while not self.stopping() and (not self.due or self.due[0][0] > timezone.now()):
                    timeout = None
                    if self.due:
                        timeout = (self.due[0][0] - timezone.now()).total_seconds()
                    self.changed.wait(timeout)
                if self.stopping():
                    return
                _at, _n, alias, saga_id = heapq.heappop(self.due)
            self.pool.submit(_wake, alias, saga_id)


def _wake(alias: str, saga_id: UUID) -> None:
    try:
        run(alias, saga_id)
    except Exception:  # the saga keeps its state; recovery resumes it
        logger.exception("Saga %s stopped with an unexpected error", saga_id)
    finally:
        connections.close_all()  # this pool thread's own connections


def waker() -> _Waker:
    """This process's waker."""
    return per_process(_Waker)
