"""Saga retention: `sagas prune` deletes what finished long ago, never what is still going on."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from cleave import sagas
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import unit
from tests.support.platform import saga

pytestmark = unit

State = SagaInstance.State


def aged(state: str, *, days: float, steps: int = 2, alias: str = "orders", **values):
    """A saga started `days` ago and, when final, finished then too, with `steps` log rows."""
    moment = timezone.now() - timedelta(days=days)
    instance = saga(alias, state=state, **values)
    SagaInstance.objects.using(alias).filter(pk=instance.pk).update(
        created_at=moment,
        completed_at=moment if state in SagaInstance.FINAL_STATES else None,
    )
    SagaStepLog.objects.using(alias).bulk_create(
        SagaStepLog(
            saga_id=instance.pk,
            step_index=n,
            step=f"step-{n}",
            kind=SagaStepLog.Kind.ACTION,
            status=SagaStepLog.Status.SUCCEEDED,
            started_at=moment,
        )
        for n in range(steps)
    )
    return instance


def kept(alias: str = "orders") -> set:
    return set(SagaInstance.objects.using(alias).values_list("pk", flat=True))


def test_prune_deletes_finished_sagas_older_than_the_retention_with_their_steps():
    # given sagas that completed and compensated 40 days ago, and others that did not finish
    completed = aged(State.COMPLETED, days=40, steps=3)
    compensated = aged(State.COMPENSATED, days=40, failure_reason="payment_declined")
    running = aged(State.RUNNING, days=40)
    waiting = aged(State.RUNNING, days=40, wake_at=timezone.now(), last_error="inventory down")
    compensating = aged(State.COMPENSATING, days=40)
    failed = aged(State.FAILED, days=40, failure_reason="payment_declined")
    recent = aged(State.COMPLETED, days=10)

    # when the sagas older than 30 days are pruned
    out = StringIO()
    call_command("sagas", "prune", "--older-than", "30", stdout=out)

    # then the two finished ones are gone, step log and all; the others stay, with their steps
    assert kept() == {running.pk, waiting.pk, compensating.pk, failed.pk, recent.pk}
    assert (
        not SagaStepLog.objects.using("orders")
        .filter(saga_id__in=[completed.pk, compensated.pk])
        .exists()
    )
    assert SagaStepLog.objects.using("orders").count() == 5 * 2
    orders = next(line for line in out.getvalue().splitlines() if line.startswith("orders"))
    assert orders.split() == ["orders", "deleted", "sagas", "2,", "steps", "5"]


def test_a_dry_run_counts_and_deletes_nothing():
    aged(State.COMPLETED, days=40, steps=3)
    aged(State.COMPENSATED, days=40)
    aged(State.RUNNING, days=40)
    before = kept()

    out = StringIO()
    call_command("sagas", "prune", "--older-than", "30", "--dry-run", stdout=out)

    assert kept() == before
    assert "orders        would delete sagas 2, steps 5" in out.getvalue()


def test_a_saga_finished_within_the_retention_stays_however_long_ago_it_started():
    # a saga that started 40 days ago and was refunded (compensated) yesterday
    refunded = aged(State.COMPENSATED, days=40)
    SagaInstance.objects.using("orders").filter(pk=refunded.pk).update(
        completed_at=timezone.now() - timedelta(days=1)
    )

    report = sagas.prune("orders", older_than=timedelta(days=30))

    assert (report.sagas, report.steps) == (0, 0)
    assert refunded.pk in kept()


def test_prune_works_in_batches_until_nothing_old_is_left():
    old = [aged(State.COMPLETED, days=40 + n) for n in range(5)]
    stuck = aged(State.RUNNING, days=60)  # older than every batch: read, never deleted

    report = sagas.prune("orders", older_than=timedelta(days=30), batch=2)

    assert (report.sagas, report.steps) == (5, 10)
    assert kept() == {stuck.pk}
    assert not SagaStepLog.objects.using("orders").filter(saga_id__in=[s.pk for s in old]).exists()


def test_prune_takes_one_context_or_every_one():
    in_orders = aged(State.COMPLETED, days=40)
    in_users = aged(State.COMPLETED, days=40, alias="users")

    call_command("sagas", "prune", "--older-than", "30", "--context", "users", stdout=StringIO())
    assert in_orders.pk in kept("orders")
    assert in_users.pk not in kept("users")

    every = StringIO()
    call_command("sagas", "prune", "--older-than", "30", stdout=every)
    assert in_orders.pk not in kept("orders")
    assert {line.split()[0] for line in every.getvalue().splitlines()} >= {"orders", "users"}


def test_prune_refuses_a_context_this_process_does_not_serve():
    with pytest.raises(CommandError, match="No local context 'warehouse'"):
        call_command("sagas", "prune", "--older-than", "30", "--context", "warehouse")
