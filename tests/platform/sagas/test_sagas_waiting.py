"""
Sagas that wait instead of failing: a participant that is unavailable (refused,
timed out, 5xx, circuit open, database at its limit) makes the saga wait and
try again, without a thread held, until its deadline; compensations wait until
they succeed. The timer that would wake the saga is replaced by a recorder, and
the test wakes the saga itself: no sleeps.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import OperationalError, transaction
from django.utils import timezone

from cleave import sagas
from cleave.core.errors import CircuitOpen, ServiceError, ServiceUnavailable
from cleave.observability.metrics import SAGA_OVERDUE_COMPENSATIONS
from cleave.sagas import SagaContext, SagaDefinition, Step, start
from cleave.sagas.models import SagaInstance, SagaStepLog
from cleave.testing import flows

pytestmark = [flows]

ALIAS = "users"


class Wakes:
    """Stands in for the in-process runner's timer: records when each saga asked to wake."""

    def __init__(self) -> None:
        self.due: list[tuple] = []

    def add(self, at, alias, saga_id) -> None:
        self.due.append((at, alias, saga_id))


@pytest.fixture
def wakes(monkeypatch) -> Wakes:
    recorder = Wakes()
    monkeypatch.setattr("cleave.sagas.runners.waker", lambda: recorder)
    return recorder


class Participant:
    """Unavailable (raising `failure`) for its first `times` calls, then answering."""

    def __init__(self, name: str, failure: Exception, times: int | None = None) -> None:
        self.name = name
        self.failure = failure
        self.times = times
        self.calls = 0

    def __call__(self, ctx: SagaContext) -> dict:
        self.calls += 1
        if self.times is None or self.calls <= self.times:
            raise self.failure
        return {f"{self.name}_done": True}


def done(name):
    def action(ctx: SagaContext) -> dict:
        return {f"{name}_done": True}

    return action


def undone(journal, name):
    def compensation(ctx: SagaContext) -> dict:
        journal.append(f"undo {name}")
        return {}

    return compensation


@pytest.fixture
def define(saga_definitions):
    def build(*steps: Step, **options) -> SagaDefinition:
        options.setdefault("deadline", timedelta(minutes=5))
        name = f"test.waiting-{uuid.uuid4().hex[:8]}"
        return saga_definitions(SagaDefinition(name=name, context=ALIAS, steps=steps, **options))

    return build


def started(definition: SagaDefinition) -> SagaInstance:
    with transaction.atomic(using=ALIAS):
        instance = start(definition.name, data={"order": "o-1"})
    return reload(instance)


def reload(instance: SagaInstance) -> SagaInstance:
    return SagaInstance.objects.using(ALIAS).get(pk=instance.pk)


def wake(instance: SagaInstance, *, after: timedelta = timedelta(0)) -> SagaInstance:
    """Let the saga's wait pass (moving its wake time, not the clock) and drive it."""
    SagaInstance.objects.using(ALIAS).filter(pk=instance.pk).update(
        wake_at=timezone.now() - timedelta(milliseconds=1) - after
    )
    return sagas.run(ALIAS, instance.pk)


def statuses(instance: SagaInstance) -> list[tuple[str, str, str]]:
    return list(
        SagaStepLog.objects.using(ALIAS)
        .filter(saga_id=instance.pk)
        .order_by("id")
        .values_list("step", "kind", "status")
    )


@pytest.mark.parametrize(
    "failure",
    [
        ServiceUnavailable("inventory", message="inventory: connection refused"),
        CircuitOpen("inventory", 30),
        ServiceError("inventory", 503, {"detail": "busy"}),
        OperationalError("too many clients already"),
    ],
    ids=["unreachable", "circuit-open", "5xx", "database"],
)
def test_an_unavailable_participant_makes_the_saga_wait_without_holding_it(define, wakes, failure):
    charge = Participant("charge", failure, times=1)
    definition = define(Step("reserve", done("reserve")), Step("charge", charge))

    saga = started(definition)

    assert saga.state == SagaInstance.State.RUNNING
    assert saga.lease_owner == ""  # no process holds it while it waits
    assert saga.wake_at is not None
    assert saga.last_error
    assert statuses(saga)[-1] == ("charge", "action", "unavailable")
    # the in-process runner's timer was asked to drive it when it is due
    ((at, alias, saga_id),) = wakes.due
    assert (alias, saga_id) == (ALIAS, saga.pk)
    assert at == saga.wake_at
    # the first wait is about CLEAVE_SAGA_WAIT_BASE (0.5 s), less jitter
    assert timedelta(0) < saga.wake_at - saga.updated_at <= timedelta(seconds=0.6)


def test_a_waiting_saga_is_not_driven_before_it_is_due(define, wakes):
    definition = define(Step("charge", Participant("charge", ServiceUnavailable("payments"), 1)))
    saga = started(definition)

    again = sagas.run(ALIAS, saga.pk)

    assert again.state == SagaInstance.State.RUNNING
    assert statuses(again) == [("charge", "action", "unavailable")]
    assert saga.pk not in {row.pk for row in sagas.resumable(ALIAS)}


def test_a_participant_that_comes_back_lets_the_saga_complete(define, wakes):
    charge = Participant("charge", ServiceUnavailable("payments"), times=2)
    definition = define(Step("reserve", done("reserve")), Step("charge", charge))
    saga = started(definition)

    saga = wake(saga)
    assert saga.state == SagaInstance.State.RUNNING
    saga = wake(saga)

    assert saga.state == SagaInstance.State.COMPLETED
    assert saga.data["charge_done"] is True
    assert saga.wake_at is None
    assert saga.last_error == ""
    assert [status for *_, status in statuses(saga)] == [
        "succeeded",
        "unavailable",
        "unavailable",
        "succeeded",
    ]


def test_the_waits_grow_exponentially_up_to_the_cap(settings):
    settings.CLEAVE_SAGA_WAIT_BASE = 0.5
    settings.CLEAVE_SAGA_WAIT_MAX = 30
    # the platform's one backoff: uniform in [d/2, d], d = min(max, base * 2**(n-1))
    for _ in range(50):
        assert 0.25 <= sagas.wait_delay(1) <= 0.5
        assert 0.5 <= sagas.wait_delay(2) <= 1.0
        assert 4.0 <= sagas.wait_delay(5) <= 8.0
        assert 15 <= sagas.wait_delay(20) <= 30
        assert 15 <= sagas.wait_delay(10_000) <= 30


def test_a_saga_never_waits_past_its_deadline(define, wakes):
    definition = define(
        Step("charge", Participant("charge", ServiceUnavailable("payments"))),
        deadline=timedelta(milliseconds=100),
    )
    saga = started(definition)

    assert saga.wake_at <= saga.deadline


def test_at_the_deadline_a_waiting_saga_compensates_with_a_true_reason(define, wakes):
    journal: list[str] = []
    definition = define(
        Step("reserve", done("reserve"), undone(journal, "reserve")),
        Step(
            "charge",
            Participant("charge", ServiceUnavailable("payments")),
            undone(journal, "charge"),
        ),
        deadline=timedelta(minutes=5),
        deadline_reason="timeout",
        unavailable_reason="service_unavailable",
    )
    saga = started(definition)
    SagaInstance.objects.using(ALIAS).filter(pk=saga.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )

    saga = wake(saga)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "service_unavailable"
    assert "payments" in saga.data["failure_detail"]
    # the waiting call may have taken effect: it is compensated too
    assert journal == ["undo charge", "undo reserve"]


def test_a_compensation_that_meets_an_outage_waits_until_it_succeeds(define, wakes):
    release = Participant("release", ServiceUnavailable("inventory"), times=3)
    definition = define(
        Step("reserve", done("reserve"), release),
        Step("charge", done("charge"), None),
        Step("refuse", _refuse),
    )
    saga = started(definition)
    for _ in range(3):
        assert saga.state == SagaInstance.State.COMPENSATING
        assert saga.wake_at is not None
        saga = wake(saga)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert release.calls == 4
    assert saga.wake_at is None


def test_a_compensation_still_failing_after_the_deadline_is_counted_and_keeps_trying(define, wakes):
    release = Participant("release", ServiceUnavailable("inventory"))
    definition = define(Step("reserve", done("reserve"), release), Step("refuse", _refuse))
    saga = started(definition)
    SagaInstance.objects.using(ALIAS).filter(pk=saga.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    counter = SAGA_OVERDUE_COMPENSATIONS.labels(definition.name, "reserve")
    before = counter._value.get()

    saga = wake(saga)

    assert saga.state == SagaInstance.State.COMPENSATING  # never silently failed
    assert saga.wake_at is not None
    assert counter._value.get() == before + 1
    assert saga.pk in {
        row.pk for row in SagaInstance.objects.using(ALIAS).filter(state="compensating")
    }


def test_operators_list_the_waiting_and_the_overdue_sagas(define, wakes):
    from io import StringIO

    from django.core.management import call_command

    waiting = started(
        define(
            Step("charge", Participant("charge", ServiceUnavailable("payments", message="down")))
        )
    )
    out = StringIO()
    call_command("sagas", "list", "--waiting", stdout=out)
    assert str(waiting.pk) in out.getvalue()
    assert "waiting until" in out.getvalue() and "down" in out.getvalue()

    SagaInstance.objects.using(ALIAS).filter(pk=waiting.pk).update(
        deadline=timezone.now() - timedelta(seconds=1)
    )
    overdue = StringIO()
    call_command("sagas", "list", "--overdue", stdout=overdue)
    assert str(waiting.pk) in overdue.getvalue()


def test_a_bug_in_an_action_is_not_waited_for(define, wakes, settings):
    settings.CLEAVE_SAGA_RETRY_BASE = 0
    definition = define(Step("charge", Participant("charge", KeyError("total")), retries=0))

    saga = started(definition)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert wakes.due == []


def test_a_cancellation_does_not_wait_for_the_backoff(define, wakes):
    definition = define(Step("charge", Participant("charge", ServiceUnavailable("payments"))))
    saga = started(definition)

    with transaction.atomic(using=ALIAS):
        assert sagas.request_cancel(ALIAS, saga.pk, "customer_request")
    saga = reload(saga)

    assert saga.state == SagaInstance.State.COMPENSATED
    assert saga.failure_reason == "customer_request"


def _refuse(ctx: SagaContext) -> dict:
    from cleave.sagas import StepFailed

    raise StepFailed("out_of_stock", "refused")
