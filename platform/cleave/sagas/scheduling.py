"""
The runner interface: how the engine asks for a saga to be driven (now, or at
a time), and which runner `CLEAVE_SAGA_RUNNER` picks.

The driver, the monitor and the controls schedule through `get_runner()`
and never name a runner; the runners themselves (`runners`) sit above the
driver, since the in-process one drives sagas in this process.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.utils.module_loading import import_string


class Runner(Protocol):
    # whether `start()` may lease a new saga to this process, which then drives
    # it right after the commit (see `driver.Started`)
    drives_here: bool

    def schedule(self, alias: str, saga_id: UUID, *, at: datetime | None = None) -> None: ...


# By dotted path, imported when first chosen (as Django picks its backends):
# the runners are built on the driver, which schedules through this module.
_RUNNERS: dict[str, str] = {
    "inprocess": "cleave.sagas.runners.InProcessRunner",
    "celery": "cleave.sagas.runners.CeleryRunner",
}


def runner_name() -> str:
    """`CLEAVE_SAGA_RUNNER`, which follows `CLEAVE_EVENT_TRANSPORT` unless set."""
    name = settings.CLEAVE_SAGA_RUNNER
    if not name:
        name = "celery" if settings.CLEAVE_EVENT_TRANSPORT == "celery" else "inprocess"
    if name not in _RUNNERS:
        raise ImproperlyConfigured(f"CLEAVE_SAGA_RUNNER={name!r} is not one of {sorted(_RUNNERS)}")
    return name


def get_runner() -> Runner:
    return import_string(_RUNNERS[runner_name()])()


def schedule_after_commit(alias: str, saga_id: UUID) -> None:
    runner = get_runner()
    transaction.on_commit(lambda: runner.schedule(alias, saga_id), using=alias)
