"""The saga engine: persisted progress, step log, retries, compensation and recovery."""

from __future__ import annotations

import uuid
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import transaction

from cleave import sagas
from cleave.sagas import SagaContext, SagaDefinition, Step, StepFailed, start
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import flows

pytestmark = [flows, pytest.mark.usefixtures("no_saga_backoff")]


class Journal:
    """Records what the saga's steps and compensations did, in order."""

    def __init__(self) -> None:
        self.entries: list[str] = []

    def action(self, name: str, result: dict | None = None):
        def run(ctx: SagaContext) -> dict:
            self.entries.append(name)
            return result or {}

        return run

    def undo(self, name: str):
        def run(ctx: SagaContext) -> dict:
            self.entries.append(f"undo {name}")
            return {f"undone_{name}": True}

        return run

    def refuse(self, name: str, reason: str):
        def run(ctx: SagaContext) -> None:
            self.entries.append(name)
            raise StepFailed(reason, f"{name} refused")

        return run

    def crash(self, name: str, *, times: int | None = None):
        """Raise a technical error `times` times (always when None), then succeed."""
        calls = {"n": 0}

        def run(ctx: SagaContext) -> dict:
            calls["n"] += 1
            self.entries.append(name)
            if times is None or calls["n"] <= times:
                raise ConnectionError(f"{name} is unreachable")
            return {name: "done"}

        return run


@pytest.fixture
def journal() -> Journal:
    return Journal()


@pytest.fixture
def define(saga_definitions):
    def build(*steps: Step, **options) -> SagaDefinition:
        name = f"test.saga-{uuid.uuid4().hex[:8]}"
        return saga_definitions(SagaDefinition(name=name, context="users", steps=steps, **options))

    return build


def run_saga(definition: SagaDefinition, data: dict | None = None) -> SagaInstance:
    with transaction.atomic(using="users"):
        instance = start(definition.name, data=data or {"order": "o-1"}, correlation_id="flow-9")
        assert instance.state == SagaInstance.State.RUNNING
    return SagaInstance.objects.using("users").get(pk=instance.id)


def step_log(saga: SagaInstance) -> list[tuple[str, str, int, str]]:
    return [
        (log.step, log.kind, log.attempt, log.status)
        for log in SagaStepLog.objects.using("users").filter(saga=saga).order_by("id")
    ]


def test_a_saga_whose_steps_all_succeed_completes_with_its_step_log(define, journal):
    def confirm(ctx: SagaContext) -> dict:
        journal.entries.append("confirm")
        return {"confirmed_with": ctx.data["reservation"], "order_seen": ctx.data["order"]}

    definition = define(
        Step("reserve", journal.action("reserve", {"reservation": "r-1"}), journal.undo("reserve")),
        Step("charge", journal.action("charge", {"payment": "p-1"}), journal.undo("charge")),
        Step("confirm", confirm),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPLETED
    assert saga.completed_at is not None
    assert saga.current_step == 3
    assert saga.failure_reason == ""
    assert saga.context == "users"
    assert saga.correlation_id == "flow-9"
    assert saga.lease_owner == ""
    assert journal.entries == ["reserve", "charge", "confirm"]
    assert saga.data == {
        "order": "o-1",
        "reservation": "r-1",
        "payment": "p-1",
        "confirmed_with": "r-1",
        "order_seen": "o-1",
    }
    assert step_log(saga) == [
        ("reserve", "action", 1, "succeeded"),
        ("charge", "action", 1, "succeeded"),
        ("confirm", "action", 1, "succeeded"),
    ]
    first = SagaStepLog.objects.using("users").filter(saga=saga).order_by("id").first()
    assert first.result == {"reservation": "r-1"}
    assert first.finished_at is not None
    assert first.duration_ms is not None


def test_an_effect_committed_with_its_step_writes_together_with_the_sagas_progress(define, journal):
    from contexts.users.models import Customer

    def confirm(ctx: SagaContext) -> dict:
        journal.entries.append("confirm")

        def effect() -> dict:
            # the effect's writes are not committed yet, nor is the step's result
            assert transaction.get_connection("users").in_atomic_block
            customer = Customer.objects.using("users").create(
                email="effect@example.com", name="Effect", password="!"
            )
            return {"customer": str(customer.id)}

        ctx.with_step_commit(effect)
        return {"confirmed": True}

    definition = define(
        Step("reserve", journal.action("reserve", {"reservation": "r-1"}), journal.undo("reserve")),
        Step("confirm", confirm),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPLETED
    customer = Customer.objects.using("users").get(email="effect@example.com")
    assert saga.data["customer"] == str(customer.id)
    assert saga.data["confirmed"] is True
    last = SagaStepLog.objects.using("users").filter(saga=saga).order_by("id").last()
    assert (last.step, last.status) == ("confirm", "succeeded")
    assert last.result == {"confirmed": True, "customer": str(customer.id)}


def test_an_effect_that_fails_rolls_back_its_writes_and_fails_its_step(define, journal):
    from contexts.users.models import Customer

    def confirm(ctx: SagaContext) -> dict:
        def effect() -> None:
            Customer.objects.using("users").create(
                email="rolled-back@example.com", name="Gone", password="!"
            )
            raise StepFailed("refused", "the effect refused")

        ctx.with_step_commit(effect)
        return {}

    definition = define(
        Step("reserve", journal.action("reserve", {"reservation": "r-1"}), journal.undo("reserve")),
        Step("confirm", confirm),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "refused"
    assert not Customer.objects.using("users").filter(email="rolled-back@example.com").exists()
    assert journal.entries == ["reserve", "undo reserve"]
    assert ("confirm", "action", 1, "failed") in step_log(saga)


def test_only_an_action_commits_with_its_step(define):
    definition = define(Step("noop", lambda ctx: {}))
    instance = SagaInstance(id=uuid.uuid4(), saga_type=definition.name, data={})
    compensation = SagaContext(instance, step="noop", kind=SagaStepLog.Kind.COMPENSATION)

    with pytest.raises(ValueError, match="only an action"):
        compensation.with_step_commit(lambda: None)


def test_a_saga_started_in_a_rolled_back_transaction_never_runs(define, journal):
    definition = define(Step("reserve", journal.action("reserve")))

    with pytest.raises(RuntimeError), transaction.atomic(using="users"):
        start(definition.name, data={})
        raise RuntimeError("the business transaction failed")

    assert journal.entries == []
    assert not SagaInstance.objects.using("users").exists()


def test_a_refused_step_compensates_the_completed_steps_in_reverse(define, journal):
    definition = define(
        Step("place", journal.action("place"), journal.undo("place")),
        Step("reserve", journal.action("reserve"), journal.undo("reserve")),
        Step("charge", journal.refuse("charge", "payment_declined"), journal.undo("charge")),
        Step("confirm", journal.action("confirm")),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "payment_declined"
    assert saga.data["failure_detail"] == "charge refused"
    assert saga.current_step == 0
    assert journal.entries == ["place", "reserve", "charge", "undo reserve", "undo place"]
    assert step_log(saga) == [
        ("place", "action", 1, "succeeded"),
        ("reserve", "action", 1, "succeeded"),
        ("charge", "action", 1, "failed"),
        ("reserve", "compensation", 1, "succeeded"),
        ("place", "compensation", 1, "succeeded"),
    ]


def test_a_refusal_is_not_retried(define, journal):
    definition = define(Step("charge", journal.refuse("charge", "declined"), retries=5))

    saga = run_saga(definition)

    assert journal.entries == ["charge"]
    assert saga.state == SagaInstance.State.COMPENSATED


def test_a_technical_error_is_retried_then_the_step_itself_is_compensated_too(define, journal):
    definition = define(
        Step("reserve", journal.action("reserve"), journal.undo("reserve")),
        Step("charge", journal.crash("charge"), journal.undo("charge"), retries=2),
        error_reason="payment_error",
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "payment_error"
    assert "charge is unreachable" in saga.data["failure_detail"]
    # the last attempt may have charged before failing: its outcome is unknown,
    # so the failed step is compensated as well as the completed one
    assert journal.entries == [
        "reserve",
        "charge",
        "charge",
        "charge",
        "undo charge",
        "undo reserve",
    ]
    log = step_log(saga)
    assert log[1:4] == [
        ("charge", "action", 1, "error"),
        ("charge", "action", 2, "error"),
        ("charge", "action", 3, "error"),
    ]
    errored = SagaStepLog.objects.using("users").filter(saga=saga, status="error").first()
    assert "ConnectionError" in errored.error


def test_a_steps_own_error_reason_wins_over_the_sagas(define, journal):
    definition = define(
        Step("charge", journal.crash("charge"), retries=0, error_reason="timeout"),
        error_reason="payment_error",
    )

    saga = run_saga(definition)

    assert saga.failure_reason == "timeout"
    assert journal.entries == ["charge"]


def test_a_technical_error_that_clears_on_retry_lets_the_saga_complete(define, journal):
    definition = define(Step("charge", journal.crash("charge", times=1), retries=2))

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPLETED
    assert saga.data["charge"] == "done"
    assert step_log(saga) == [
        ("charge", "action", 1, "error"),
        ("charge", "action", 2, "succeeded"),
    ]


def test_a_compensation_that_keeps_failing_leaves_the_saga_failed(define, journal):
    definition = define(
        Step("reserve", journal.action("reserve"), journal.crash("release")),
        Step("charge", journal.refuse("charge", "payment_declined")),
        compensation_retries=2,
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.FAILED
    assert saga.failure_reason == "payment_declined"
    assert saga.completed_at is not None
    assert journal.entries == ["reserve", "charge", "release", "release", "release"]
    assert [entry for entry in step_log(saga) if entry[1] == "compensation"] == [
        ("reserve", "compensation", 1, "error"),
        ("reserve", "compensation", 2, "error"),
        ("reserve", "compensation", 3, "error"),
    ]


def test_a_step_without_compensation_is_skipped_when_compensating(define, journal):
    definition = define(
        Step("place", journal.action("place"), journal.undo("place")),
        Step("validate", journal.action("validate")),
        Step("charge", journal.refuse("charge", "user_invalid")),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert journal.entries == ["place", "validate", "charge", "undo place"]


def test_a_saga_past_its_deadline_compensates_with_timeout(define, journal):
    definition = define(
        Step("reserve", journal.action("reserve"), journal.undo("reserve")),
        deadline=timedelta(seconds=-1),
    )

    saga = run_saga(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "timeout"
    assert journal.entries == []


def test_on_finished_sees_the_final_state(define, journal):
    finished: list[tuple[str, str]] = []

    def on_finished(ctx: SagaContext) -> None:
        finished.append((ctx.instance.state, ctx.failure_reason))

    definition = define(
        Step("charge", journal.refuse("charge", "payment_declined")), on_finished=on_finished
    )

    run_saga(definition)

    assert finished == [("compensated", "payment_declined")]


def test_a_saga_whose_process_died_is_resumed_by_the_command(define, journal, monkeypatch):
    class Crashed:
        """A runner whose process dies before the saga runs."""

        def schedule(self, alias, saga_id):
            return None

    definition = define(
        Step("reserve", journal.action("reserve")), Step("charge", journal.action("charge"))
    )
    monkeypatch.setattr("cleave.sagas.scheduling.get_runner", Crashed)
    saga = run_saga(definition)
    assert saga.state == SagaInstance.State.RUNNING
    monkeypatch.undo()

    out = StringIO()
    call_command("sagas", "resume", stdout=out)

    saga.refresh_from_db(using="users")
    assert saga.state == SagaInstance.State.COMPLETED
    assert journal.entries == ["reserve", "charge"]
    assert f"{saga.id}: completed" in out.getvalue()


def test_a_saga_leased_by_a_live_process_is_left_alone(define, journal):
    definition = define(Step("reserve", journal.action("reserve")))
    with transaction.atomic(using="users"):
        saga = SagaInstance.objects.using("users").create(
            saga_type=definition.name, context="users", data={}, correlation_id="c"
        )
    assert sagas.acquire("users", saga.id, "another-host:1:1")

    result = sagas.run("users", saga.id)

    assert result.state == SagaInstance.State.RUNNING
    assert journal.entries == []


def test_a_refusal_can_hand_data_to_the_compensations(define, journal):
    seen: list[list[str]] = []

    def short(ctx: SagaContext) -> None:
        raise StepFailed("out_of_stock", "2 SKUs short", data={"short_skus": ["A-1", "B-2"]})

    def release(ctx: SagaContext) -> None:
        seen.append(ctx.data["short_skus"])

    definition = define(Step("place", journal.action("place"), release), Step("reserve", short))

    saga = run_saga(definition)

    assert saga.failure_reason == "out_of_stock"
    assert saga.data["short_skus"] == ["A-1", "B-2"]
    assert seen == [["A-1", "B-2"]]


def test_the_sagas_command_lists_and_shows_an_instance_with_its_timeline(define, journal):
    definition = define(
        Step("reserve", journal.action("reserve"), journal.undo("reserve")),
        Step("charge", journal.refuse("charge", "payment_declined")),
    )
    saga = run_saga(definition)

    listing, shown = StringIO(), StringIO()
    call_command("sagas", "list", "--state", "compensated", stdout=listing)
    call_command("sagas", "show", str(saga.id), stdout=shown)

    assert str(saga.id) in listing.getvalue()
    assert "payment_declined" in listing.getvalue()
    lines = shown.getvalue().splitlines()
    assert lines[0] == f"{definition.name} {saga.id} [users]"
    assert "state: compensated" in lines[1]
    timeline = [line.split()[1:3] for line in lines[3:]]
    assert timeline == [["reserve", "action"], ["charge", "action"], ["reserve", "compensation"]]


def test_the_sagas_command_refuses_an_unknown_id():
    with pytest.raises(CommandError, match="No saga"):
        call_command("sagas", "show", str(uuid.uuid4()), stdout=StringIO())
    with pytest.raises(CommandError, match="not a saga id"):
        call_command("sagas", "show", "nope", stdout=StringIO())
