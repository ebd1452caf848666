"""
The saga engine under stress: timeouts, unknown outcomes, crashes, cancellation,
operator controls and the runners. Written as given / when / then with
`cleave.testing.SagaScenario`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import transaction
from django.utils import timezone

from cleave import sagas
from cleave.runtime import periodic
from cleave.sagas import SagaContext, SagaDefinition, Step, StepFailed, start
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import flows, saga_scenario  # noqa: F401 - the fixture

pytestmark = [flows, pytest.mark.usefixtures("no_saga_backoff")]

ALIAS = "users"


def ok(name):
    def action(ctx: SagaContext) -> dict:
        return {f"{name}_done": True}

    action.__name__ = name
    return action


def undo(name):
    def compensation(ctx: SagaContext) -> dict:
        return {f"{name}_undone": True}

    compensation.__name__ = f"undo_{name}"
    return compensation


@pytest.fixture
def base(saga_definitions):
    """A three-step saga owned by the users context: reserve → charge → confirm."""
    return saga_definitions(
        SagaDefinition(
            name=f"test.durable-{uuid.uuid4().hex[:8]}",
            context="users",
            steps=(
                Step("reserve", ok("reserve"), undo("reserve")),
                Step("charge", ok("charge"), undo("charge")),
                Step("confirm", ok("confirm"), undo("confirm")),
            ),
            error_reason="payment_error",
            cancel_reason="customer_request",
        )
    )


@pytest.fixture
def scenario(base, saga_scenario):  # noqa: F811 - the fixture imported above
    return saga_scenario(base.name).given_data(order="o-1")


@pytest.fixture
def timeouts_settle_first(monkeypatch):
    """
    An Event a hanging step waits on, set once the watchdog has handed the saga
    on and its successor has finished: the late return then meets a settled saga
    (and the test's in-memory SQLite never sees two writers at once).
    """
    settled = threading.Event()
    original = sagas.on_timeout

    def on_timeout(**kwargs):
        try:
            original(**kwargs)
        finally:
            settled.set()

    monkeypatch.setattr("cleave.sagas.monitor.on_timeout", on_timeout)
    return settled


# --- the happy path records a heartbeat and a prepared step log ----------------------------


def test_a_completed_saga_keeps_one_log_row_per_attempt_and_its_heartbeat(scenario):
    saga = scenario.when_started()

    scenario.then_state("completed").then_timeline(
        [
            ("reserve", "action", "succeeded"),
            ("charge", "action", "succeeded"),
            ("confirm", "action", "succeeded"),
        ]
    )
    assert saga.heartbeat_at is not None
    assert (saga.lease_owner, saga.lease_expires_at) == ("", None)
    keys = list(
        SagaStepLog.objects.using(ALIAS)
        .filter(saga_id=saga.id)
        .order_by("id")
        .values_list("idempotency_key", flat=True)
    )
    assert keys == [f"saga:{saga.id}:reserve", f"saga:{saga.id}:charge", f"saga:{saga.id}:confirm"]


# --- timeouts and unknown outcomes -------------------------------------------------------


def test_a_step_that_outlives_its_timeout_is_compensated_with_the_completed_ones(
    scenario, timeouts_settle_first
):
    late = []

    def slow_charge(ctx):
        timeouts_settle_first.wait(10)
        late.append("returned")
        return {"charged": True}

    steps = list(scenario.definition.steps)
    steps[1] = Step("charge", slow_charge, undo("charge"), timeout=0.05, retries=0)
    scenario.given_definition(steps=tuple(steps))

    scenario.when_started()

    scenario.then_state("compensated").then_reason("timeout")
    scenario.then_timeline(
        [
            ("reserve", "action", "succeeded"),
            ("charge", "action", "timeout"),
            ("charge", "compensation", "succeeded"),
            ("reserve", "compensation", "succeeded"),
        ]
    )
    assert late == ["returned"]  # the late answer arrived, and was not recorded
    assert "charged" not in scenario.instance.data


def test_a_query_that_finds_the_action_took_effect_lets_the_saga_go_on(scenario):
    scenario.given_step(
        "charge", unknown="timeout", query=lambda ctx: {"payment": "p-1"}, retries=0
    )

    scenario.when_started()

    scenario.then_state("completed").then_data(payment="p-1")
    scenario.then_timeline(
        [
            ("reserve", "action", "succeeded"),
            ("charge", "action", "error"),
            ("charge", "query", "succeeded"),
            ("confirm", "action", "succeeded"),
        ]
    )


def test_a_query_that_finds_nothing_lets_the_action_run_again(scenario):
    attempts = []

    def flaky(ctx):
        attempts.append(ctx.attempt)
        if len(attempts) == 1:
            raise sagas.OutcomeUnknown(None, "no answer")
        return {"charged": ctx.key}

    steps = list(scenario.definition.steps)
    steps[1] = Step("charge", flaky, undo("charge"), query=lambda ctx: None, retries=1)
    scenario.given_definition(steps=tuple(steps))

    saga = scenario.when_started()

    scenario.then_state("completed").then_data(charged=f"saga:{saga.id}:charge")
    assert attempts == [1, 2]


def test_a_query_that_finds_a_refusal_compensates_only_the_completed_steps(scenario):
    def refused(ctx):
        raise StepFailed("payment_declined", "declined after all")

    scenario.given_step("charge", unknown="timeout", query=refused)

    scenario.when_started()

    scenario.then_state("compensated").then_reason("payment_declined")
    scenario.then_compensated(["reserve"])


def test_an_unknown_outcome_without_a_query_is_compensated_too(scenario):
    scenario.given_step("charge", unknown="timeout")

    scenario.when_started()

    scenario.then_state("compensated").then_reason("timeout").then_compensated(
        ["charge", "reserve"]
    )


def test_a_refusal_is_not_compensated_itself(scenario):
    scenario.given_step("charge", fails="payment_declined")

    scenario.when_started()

    scenario.then_state("compensated").then_compensated(["reserve"])


def test_the_deadline_cuts_a_steps_timeout_short(scenario, timeouts_settle_first):
    def slow(ctx):
        timeouts_settle_first.wait(10)
        return {}

    steps = list(scenario.definition.steps)
    steps[0] = Step("reserve", slow, undo("reserve"), timeout=30)
    scenario.given_definition(steps=tuple(steps), deadline=timedelta(milliseconds=100))

    scenario.when_started()

    scenario.then_state("compensated").then_reason("timeout")
    scenario.then_timeline(
        [("reserve", "action", "timeout"), ("reserve", "compensation", "succeeded")]
    )


# --- crashes -------------------------------------------------------------------------------


def crashed_mid_step(definition: SagaDefinition, index: int, **fields) -> SagaInstance:
    """A saga as a process leaves it when it dies during step `index`'s call."""
    now = timezone.now()
    with transaction.atomic(using=ALIAS):
        saga = SagaInstance.objects.using(ALIAS).create(
            saga_type=definition.name,
            context="users",
            data={"order": "o-1"},
            correlation_id="c",
            current_step=index,
            lease_owner="dead-host:1:abc",
            lease_expires_at=now - timedelta(seconds=1),
            **fields,
        )
        for done in range(index):
            SagaStepLog.objects.using(ALIAS).create(
                saga=saga,
                step_index=done,
                step=definition.steps[done].name,
                kind="action",
                status="succeeded",
            )
        SagaStepLog.objects.using(ALIAS).create(
            saga=saga,
            step_index=index,
            step=definition.steps[index].name,
            kind="action",
            status="started",
        )
    return saga


def test_a_step_interrupted_by_a_crash_is_called_again_on_resume(base):
    saga = crashed_mid_step(base, 1)

    [resumed] = sagas.resume_all(ALIAS)

    assert resumed.id == saga.id
    assert resumed.state == "completed"
    log = list(
        SagaStepLog.objects.using(ALIAS)
        .filter(saga=saga)
        .order_by("id")
        .values_list("step", "attempt", "status")
    )
    assert log == [
        ("reserve", 1, "succeeded"),
        ("charge", 1, "error"),  # interrupted
        ("charge", 2, "succeeded"),
        ("confirm", 1, "succeeded"),
    ]
    interrupted = SagaStepLog.objects.using(ALIAS).get(saga=saga, step="charge", attempt=1)
    assert "interrupted" in interrupted.error


def test_a_step_interrupted_by_a_crash_past_the_deadline_is_compensated_too(base):
    saga = crashed_mid_step(base, 1, deadline=timezone.now() - timedelta(seconds=1))

    sagas.resume_all(ALIAS)

    saga.refresh_from_db(using=ALIAS)
    assert (saga.state, saga.failure_reason) == ("compensated", "timeout")
    compensated = list(
        SagaStepLog.objects.using(ALIAS)
        .filter(saga=saga, kind="compensation")
        .order_by("id")
        .values_list("step", flat=True)
    )
    assert compensated == ["charge", "reserve"]


def test_a_saga_whose_lease_is_live_is_not_resumed(base):
    saga = crashed_mid_step(base, 1)
    SagaInstance.objects.using(ALIAS).filter(pk=saga.id).update(
        lease_expires_at=timezone.now() + timedelta(seconds=60)
    )

    assert sagas.resume_all(ALIAS) == []


def test_a_driver_that_lost_its_lease_stops_without_writing(base, scenario):
    def steal(ctx):
        SagaInstance.objects.using(ALIAS).filter(pk=ctx.id).update(lease_owner="someone-else")
        return {"stolen": True}

    steps = list(scenario.definition.steps)
    steps[1] = Step("charge", steal)
    scenario.given_definition(steps=tuple(steps))

    saga = scenario.when_started()

    assert (saga.state, saga.current_step, saga.lease_owner) == ("running", 1, "someone-else")
    assert "stolen" not in saga.data


# --- cancellation and operator controls ---------------------------------------------------------


def test_a_cancellation_requested_during_a_step_compensates_after_it(scenario):
    def charge_then_cancelled(ctx):
        with transaction.atomic(using=ALIAS):
            assert sagas.request_cancel(ALIAS, ctx.id, "customer_request")
        return {"charged": True}

    steps = list(scenario.definition.steps)
    steps[1] = Step("charge", charge_then_cancelled, undo("charge"))
    scenario.given_definition(steps=tuple(steps))

    scenario.when_started()

    scenario.then_state("compensated").then_reason("customer_request")
    scenario.then_completed_steps(["reserve", "charge"]).then_compensated(["charge", "reserve"])
    assert scenario.instance.data["charged"] is True


def test_a_cancellation_requested_during_the_last_step_undoes_the_whole_saga(scenario):
    def confirm_then_cancelled(ctx):
        with transaction.atomic(using=ALIAS):
            sagas.request_cancel(ALIAS, ctx.id, "customer_request")
        return {}

    steps = list(scenario.definition.steps)
    steps[2] = Step("confirm", confirm_then_cancelled, undo("confirm"))
    scenario.given_definition(steps=tuple(steps))

    scenario.when_started()

    scenario.then_state("compensated").then_compensated(["confirm", "charge", "reserve"])


def test_a_finished_saga_cannot_be_asked_to_cancel(scenario):
    saga = scenario.when_started()

    with transaction.atomic(using=ALIAS):
        assert not sagas.request_cancel(ALIAS, saga.id, "customer_request")


def test_compensating_a_completed_saga_undoes_every_step_in_reverse(scenario):
    scenario.when_started()

    scenario.when_compensated()

    scenario.then_state("compensated").then_reason("customer_request")
    scenario.then_compensated(["confirm", "charge", "reserve"])


def test_retrying_a_failed_saga_runs_its_compensation_again(scenario):
    attempts = []

    def release_when_back(ctx):
        attempts.append(1)
        if len(attempts) <= 3:
            raise ConnectionError("inventory is down")
        return {}

    steps = list(scenario.definition.steps)
    steps[0] = Step("reserve", ok("reserve"), release_when_back)
    scenario.given_definition(steps=tuple(steps), compensation_retries=2)
    scenario.given_step("charge", fails="payment_declined")
    scenario.when_started()
    scenario.then_state("failed")

    scenario.instance = sagas.retry(ALIAS, scenario.instance.id)

    scenario.then_state("compensated").then_reason("payment_declined")
    assert len(attempts) == 4


# --- runners --------------------------------------------------------------------------------


def test_the_runner_follows_the_event_transport_unless_set(settings):
    settings.CLEAVE_SAGA_RUNNER = ""
    settings.CLEAVE_EVENT_TRANSPORT = "inprocess"
    assert sagas.runner_name() == "inprocess"
    settings.CLEAVE_EVENT_TRANSPORT = "celery"
    assert sagas.runner_name() == "celery"
    settings.CLEAVE_SAGA_RUNNER = "inprocess"
    assert sagas.runner_name() == "inprocess"
    settings.CLEAVE_SAGA_RUNNER = "threads"
    with pytest.raises(ImproperlyConfigured):
        sagas.get_runner()


@pytest.fixture
def celery_eager(settings):
    from config.celery import app

    settings.CLEAVE_SAGA_RUNNER = "celery"
    settings.CLEAVE_EVENT_QUEUE_PREFIX = "test-"
    app.conf.task_always_eager = True
    yield app
    app.conf.task_always_eager = False


def test_the_celery_runner_runs_the_same_definition_on_the_owning_contexts_queue(
    base, celery_eager, monkeypatch
):
    from cleave.runtime import tasks  # what a worker imports (config.celery autodiscovers it)

    sent = []

    def record(name, args, queue):
        sent.append((name, queue))
        # eager mode runs tasks called directly, not sent by name: run it as a worker would
        assert celery_eager.tasks[name].name == tasks.run_saga.name == name
        return tasks.run_saga.apply(args=args)

    monkeypatch.setattr(celery_eager, "send_task", record)

    with transaction.atomic(using=ALIAS):
        saga = start(base.name, data={"order": "o-1"})

    saga.refresh_from_db(using=ALIAS)
    assert saga.state == "completed"
    assert sent == [("cleave.sagas.run", "test-users")]


def test_a_broker_away_when_the_saga_is_handed_over_fails_no_caller(
    base, celery_eager, monkeypatch, settings, caplog
):
    from kombu.exceptions import OperationalError

    from cleave.runtime import tasks

    settings.CLEAVE_SAGA_LEASE_SECONDS = 30

    def refused(name, args, queue):
        raise OperationalError("[Errno 111] Connection refused")

    monkeypatch.setattr(celery_eager, "send_task", refused)
    # the commit runs the hand-over, which raises nothing
    with (
        caplog.at_level(logging.WARNING, logger="cleave.sagas.engine"),
        transaction.atomic(using=ALIAS),
    ):
        saga = start(base.name, data={"order": "o-1"})

    saga.refresh_from_db(using=ALIAS)
    assert saga.state == "running"
    assert f"Saga {saga.id} was not handed to the broker (OperationalError" in caplog.text
    # once unheld for a lease, the periodic resume hands it over again, to a broker that is back
    SagaInstance.objects.using(ALIAS).filter(pk=saga.pk).update(
        updated_at=timezone.now() - timedelta(seconds=60)
    )
    monkeypatch.setattr(
        celery_eager, "send_task", lambda name, args, queue: tasks.run_saga.apply(args=args)
    )
    assert periodic.get("cleave.sagas.resume").run() == 1
    saga.refresh_from_db(using=ALIAS)
    assert saga.state == "completed"


def test_the_periodic_job_hands_resumable_sagas_to_the_runner(base):
    saga = crashed_mid_step(base, 0)

    assert periodic.get("cleave.sagas.resume").run() == 1

    saga.refresh_from_db(using=ALIAS)
    assert saga.state == "completed"


# --- the sagas command ------------------------------------------------------------------------


def call(*args) -> str:
    out = StringIO()
    call_command("sagas", *args, stdout=out)
    return out.getvalue()


def test_the_command_lists_sagas_since_a_time(scenario):
    saga = scenario.when_started()
    SagaInstance.objects.using(ALIAS).filter(pk=saga.id).update(
        created_at=timezone.now() - timedelta(hours=3)
    )

    assert str(saga.id) in call("list", "--since", "4h")
    assert str(saga.id) not in call("list", "--since", "2h")
    assert str(saga.id) in call(
        "list", "--since", (timezone.now() - timedelta(days=1)).date().isoformat()
    )


def test_the_command_compensates_a_completed_saga_and_retries_a_failed_one(scenario):
    saga = scenario.when_started()

    out = call("compensate", str(saga.id), "--reason", "customer_request")

    assert f"{saga.id}: compensated (customer_request)" in out
    SagaInstance.objects.using(ALIAS).filter(pk=saga.id).update(state="failed")
    assert f"{saga.id}: compensated" in call("retry", str(saga.id))


def test_the_command_shows_heartbeat_and_keys(scenario):
    saga = scenario.when_started()

    shown = call("show", str(saga.id))

    assert "heartbeat:" in shown
    assert f"saga:{saga.id}:charge" in shown


def test_a_saga_that_cannot_be_resumed_does_not_hold_up_the_others(base):
    with transaction.atomic(using=ALIAS):
        orphan = SagaInstance.objects.using(ALIAS).create(
            saga_type="test.no-longer-defined", context="users", data={}, correlation_id="c"
        )
    saga = crashed_mid_step(base, 0)

    resumed = sagas.resume_all(ALIAS)

    assert [s.id for s in resumed] == [saga.id]
    assert resumed[0].state == "completed"
    orphan.refresh_from_db(using=ALIAS)
    assert orphan.state == "running"


def test_the_command_refuses_what_an_operator_cannot_do(scenario):
    from django.core.management import CommandError

    saga = scenario.when_started()

    with pytest.raises(CommandError, match="only a failed"):
        call("retry", str(saga.id))
    call("compensate", str(saga.id))
    with pytest.raises(CommandError, match="already compensated"):
        call("compensate", str(saga.id))
