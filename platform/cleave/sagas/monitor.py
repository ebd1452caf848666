"""
Step timeouts and the heartbeat: one daemon thread per process watches every
participant call in flight, renews the lease of each while it lasts, and
takes the saga from a driver whose call outlives its budget (`on_timeout`).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from django.db import connections, transaction
from django.utils import timezone

from cleave.core.threads import Service, per_process
from cleave.sagas import scheduling, steplog
from cleave.sagas.lease import hand_off, lease_seconds, renew
from cleave.sagas.models import SagaStepLog

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")


@dataclass(eq=False)
class Watch:
    """One participant call being watched: its lease to renew and its time budget."""

    alias: str
    saga_id: UUID
    log: SagaStepLog
    owner: str
    budget: float | None
    next_beat: float
    ends: float | None
    monitor: Monitor | None = None

    def stop(self) -> None:
        if self.monitor is not None:
            self.monitor.forget(self)


class Monitor(Service):
    """
    Keeps the lease alive while participants are being called, and enforces timeouts.

    One daemon thread per process watches every call in flight. Every third
    of the lease it renews the lease of each (the heartbeat), so a live
    driver keeps its saga however long a call takes, while a dead one's lease
    runs out quickly. When a call's budget passes first, its outcome is
    unknown: `on_timeout` (in a thread of its own, as it may go on to drive
    the saga) takes the saga from the blocked driver. A call that returns in
    time costs one registration and nothing else.
    """

    name = "cleave-saga-monitor"

    def __init__(self) -> None:
        self.watches: set[Watch] = set()
        self.changed = threading.Condition()
        # when the thread wakes next by itself: a new watch wakes it only if it
        # is due earlier (a call that returns in time then costs no thread switch)
        self.wakes_at = 0.0
        super().__init__()

    def wake(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def watch(
        self, alias: str, saga_id: UUID, log: SagaStepLog, owner: str, budget: float | None
    ) -> Watch:
        now = time.monotonic()
        entry = Watch(
            alias=alias,
            saga_id=saga_id,
            log=log,
            owner=owner,
            budget=budget,
            next_beat=now + _beat_interval(),
            ends=None if budget is None else now + budget,
            monitor=self,
        )
        first = entry.next_beat if entry.ends is None else min(entry.next_beat, entry.ends)
        with self.changed:
            self.watches.add(entry)
            if first < self.wakes_at:
                self.changed.notify()
        return entry

    def forget(self, entry: Watch) -> None:
        with self.changed:
            self.watches.discard(entry)

    def run(self) -> None:
        while not self.stopping():
            try:
                self._round()
            except Exception:  # the monitor must outlive any one failure
                logger.exception("The saga monitor failed a round")
                self.wait(0.1)

    def _round(self) -> None:
        while not self.stopping():
            beats: list[Watch] = []
            with self.changed:
                now = time.monotonic()
                due = [w for w in self.watches if w.ends is not None and w.ends <= now]
                for entry in due:
                    self.watches.discard(entry)
                for entry in self.watches:
                    if entry.next_beat <= now:
                        beats.append(entry)
                        entry.next_beat = now + _beat_interval()
                if not due and not beats:
                    # idle, it still wakes every beat interval: a new watch is
                    # then never due before the thread looks again
                    times = [now + _beat_interval()]
                    times += [w.next_beat for w in self.watches]
                    times += [w.ends for w in self.watches if w.ends is not None]
                    self.wakes_at = min(times)
                    self.changed.wait(max(0.0, self.wakes_at - now))
                    continue
                self.wakes_at = 0.0  # busy: every new watch notifies until it waits again
            for entry in due:
                threading.Thread(
                    target=_timeout_thread,
                    args=(entry,),
                    name=f"cleave-saga-timeout-{entry.saga_id}",
                    daemon=True,
                ).start()
            if beats:
                for entry in beats:
                    _beat(entry)
                # connections are not kept between rounds: a database restart
                # between two beats must not leave this thread a dead connection
                connections.close_all()


def watch(alias: str, saga_id: UUID, log: SagaStepLog, owner: str, budget: float | None) -> Watch:
    """Watch one call with this process's monitor; `.stop()` the watch when the call returns."""
    return per_process(Monitor).watch(alias, saga_id, log, owner, budget)


def _beat_interval() -> float:
    return max(lease_seconds() / 3, 0.05)


def _beat(entry: Watch) -> None:
    try:
        renew(entry.alias, entry.saga_id, entry.owner)
    except Exception:  # the next beat tries again; the lease has two more thirds
        logger.warning("Saga %s: heartbeat failed", entry.saga_id, exc_info=True)


def _timeout_thread(entry: Watch) -> None:
    try:
        on_timeout(
            alias=entry.alias,
            saga_id=entry.saga_id,
            log_id=entry.log.pk,
            started_at=entry.log.started_at,
            owner=entry.owner,
            budget=entry.budget,
        )
    finally:
        connections.close_all()  # this thread's own connections


def on_timeout(
    *, alias: str, saga_id: UUID, log_id: int, started_at: datetime, owner: str, budget: float
) -> None:
    """
    A step call outlived its budget: mark the attempt `timeout` and hand the saga on.

    The blocked driver loses its lease here; when its call finally returns,
    its fenced writes fail and it stops. The next driver settles the unknown
    outcome (query, else compensate the step too).
    """
    try:
        now = timezone.now()
        with transaction.atomic(using=alias):
            marked = steplog.time_out(
                alias, log_id, started_at=started_at, budget=budget, now=now
            ).run()
            if not marked:
                return
            if not hand_off(alias, saga_id, owner, now):
                transaction.set_rollback(True, using=alias)
                return
        logger.warning("Saga %s: a step call exceeded %.3g s; settling it", saga_id, budget)
        scheduling.get_runner().schedule(alias, saga_id)
    except Exception:
        logger.exception("Saga %s: the step timeout could not be handled", saga_id)
