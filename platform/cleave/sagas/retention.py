"""
How long finished sagas are kept: `prune()` deletes the instances that ended
well (completed) or were undone (compensated) longer ago than a retention,
with their step log, in one alias (`manage.py sagas prune`).

Kept, however old: running and compensating sagas (waiting on a participant
or not), and failed ones, whose compensation gave up and which an operator
must still retry or compensate. A completed saga that is pruned can no longer
be compensated (for a checkout: refunded through its saga), so the retention
must be longer than any refund window.

The deletes run in short transactions of `BATCH` sagas each, so that pruning
months of sagas never holds a long transaction: each batch locks the rows it
takes (skipping those another transaction holds, an operator's compensation
for one) and checks their state again as it deletes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from cleave.sagas.models import SagaInstance, SagaStepLog

State = SagaInstance.State

# finished, and nothing left for anyone to do (a failed saga waits for an operator)
PRUNABLE = (State.COMPLETED, State.COMPENSATED)
# sagas per transaction (a checkout's has about five steps)
BATCH = 500


@dataclass
class PruneReport:
    alias: str
    sagas: int = 0
    steps: int = 0


def prunable(alias: str, cutoff: datetime) -> QuerySet[SagaInstance]:
    """Sagas of `alias` that finished (completed or compensated) before `cutoff`."""
    # a saga finishes after it starts: `created_at` (indexed) narrows the scan
    # to the old rows, `completed_at` decides
    return SagaInstance.objects.using(alias).filter(
        state__in=PRUNABLE, completed_at__lt=cutoff, created_at__lt=cutoff
    )


def prune(
    alias: str, *, older_than: timedelta, dry_run: bool = False, batch: int = BATCH
) -> PruneReport:
    """
    Delete the sagas of `alias` that finished more than `older_than` ago
    (completed or compensated), with their step log, `batch` sagas per
    transaction; `dry_run` counts them instead.
    """
    cutoff = timezone.now() - older_than
    report = PruneReport(alias=alias)
    if dry_run:
        report.sagas = prunable(alias, cutoff).count()
        report.steps = (
            SagaStepLog.objects.using(alias).filter(saga__in=prunable(alias, cutoff)).count()
        )
        return report
    features = connections[alias].features
    since = None  # the oldest `created_at` the next batch can hold: kept rows are read once
    while True:
        with transaction.atomic(using=alias):
            rows = prunable(alias, cutoff).order_by("created_at")
            if since is not None:
                rows = rows.filter(created_at__gte=since)
            if features.has_select_for_update:
                rows = rows.select_for_update(
                    skip_locked=features.has_select_for_update_skip_locked
                )
            taken = list(rows.values_list("pk", "created_at")[:batch])
            if not taken:
                return report
            # the step log goes with its saga (the foreign key cascades)
            _, deleted = prunable(alias, cutoff).filter(pk__in=[pk for pk, _ in taken]).delete()
        report.sagas += deleted.get(SagaInstance._meta.label, 0)
        report.steps += deleted.get(SagaStepLog._meta.label, 0)
        since = taken[-1][1]
        if len(taken) < batch:
            return report
