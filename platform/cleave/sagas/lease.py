"""
The lease: which process drives a saga, and until when.

One process at a time drives a saga, as the lease's `owner`, renewed at
every step boundary (with the driver's own writes, see `steplog`) and, while
a participant is being called, by the monitor's heartbeat. A process that
dies stops renewing it; once it expires any process may take it. This module
owns the writes of the lease alone: take it, renew it, release it, hand it
on after a step timeout.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from cleave.sagas.models import SagaInstance

# every module of the engine logs as before it was split, under one name
logger = logging.getLogger("cleave.sagas.engine")

# A timer or a Celery countdown may fire a little before `wake_at`.
WAKE_TOLERANCE = timedelta(milliseconds=200)


def new_owner() -> str:
    # unique per drive: two drivers in one thread (a timed-out step's late
    # return, and its successor) must not mistake each other for themselves
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def lease_seconds() -> float:
    return float(settings.CLEAVE_SAGA_LEASE_SECONDS)


def lease_until(now: datetime) -> datetime:
    return now + timedelta(seconds=lease_seconds())


def acquire(alias: str, saga_id: UUID, owner: str) -> bool:
    """Take the saga's lease unless a live process holds it."""
    now = timezone.now()
    taken = (
        SagaInstance.objects.using(alias)
        .filter(pk=saga_id)
        .exclude(state__in=SagaInstance.FINAL_STATES)
        .filter(
            Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now) | Q(lease_owner=owner)
        )
        .filter(Q(wake_at__isnull=True) | Q(wake_at__lte=now + WAKE_TOLERANCE))
        .update(
            lease_owner=owner, lease_expires_at=lease_until(now), heartbeat_at=now, updated_at=now
        )
    )
    return taken == 1


def release(alias: str, saga_id: UUID, owner: str) -> None:
    try:
        SagaInstance.objects.using(alias).filter(pk=saga_id, lease_owner=owner).update(
            lease_owner="", lease_expires_at=None
        )
    except Exception:  # the lease then simply expires
        logger.exception("Saga %s: could not release its lease", saga_id)


def renew(alias: str, saga_id: UUID, owner: str) -> None:
    """Extend `owner`'s lease from now (the heartbeat); nothing if it lost the lease."""
    now = timezone.now()
    SagaInstance.objects.using(alias).filter(pk=saga_id, lease_owner=owner).update(
        lease_expires_at=lease_until(now), heartbeat_at=now
    )


def hand_off(alias: str, saga_id: UUID, owner: str, now: datetime) -> bool:
    """Free `owner`'s lease for another driver to take the saga now; False if it had lost it."""
    handed = (
        SagaInstance.objects.using(alias)
        .filter(pk=saga_id, lease_owner=owner)
        .update(lease_owner="", lease_expires_at=None, heartbeat_at=now, updated_at=now)
    )
    return bool(handed)
