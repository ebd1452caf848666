"""
The circuit breaker, the retry budget and the balancer, on a fake clock: no
sleeps, no sockets. The client's use of them is tested in test_client.py and,
with real processes, in tests/integration/test_resilience_split.py.
"""

from __future__ import annotations

import pytest

from cleave.calls.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker, Policy, Registry
from cleave.calls.discovery import Balancer
from cleave.calls.retry import Budget, RetryPolicy, call_with_retries
from cleave.core.errors import (
    CircuitOpen,
    NoHealthyInstances,
    ServiceError,
    ServiceUnavailable,
    is_technical,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def breaker(clock, transitions=None, **policy) -> CircuitBreaker:
    listeners = () if transitions is None else (lambda b, old, new: transitions.append(new),)
    return CircuitBreaker(
        "inventory", caller="orders", policy=Policy(**policy), clock=clock, listeners=listeners
    )


def fail(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        b.allow().record(False)


def succeed(b: CircuitBreaker, times: int = 1) -> None:
    for _ in range(times):
        b.allow().record(True)


# --- the breaker ----------------------------------------------------------------------


def test_a_hanging_dependency_trips_the_breaker_within_five_calls_five_seconds_apart(clock):
    b = breaker(clock)
    for _ in range(4):
        fail(b)
        assert b.state == CLOSED
        clock.advance(5)
    fail(b)
    assert b.state == OPEN


def test_an_open_circuit_refuses_at_once_and_says_when_to_try_again(clock):
    b = breaker(clock, reset_timeout=30)
    fail(b, 5)
    clock.advance(10)

    with pytest.raises(CircuitOpen) as refused:
        b.allow()

    assert refused.value.retry_after == pytest.approx(20)
    assert refused.value.status == 503
    assert is_technical(refused.value)


def test_the_breaker_opens_at_the_threshold_rate_not_on_a_few_failures(clock):
    b = breaker(clock, threshold=50, min_calls=5, window_calls=10)
    # 4 of 10 failed: below half
    succeed(b, 6)
    fail(b, 4)
    assert b.state == CLOSED
    # the oldest success leaves the window: 5 of 10 failed
    fail(b)
    assert b.state == OPEN


def test_fewer_calls_than_the_minimum_never_open_the_circuit(clock):
    b = breaker(clock, min_calls=5)
    fail(b, 4)
    assert b.state == CLOSED


def test_failures_older_than_the_window_are_forgotten(clock):
    b = breaker(clock, window_seconds=60)
    fail(b, 4)
    clock.advance(61)
    fail(b)
    assert b.state == CLOSED


def test_after_the_reset_timeout_one_trial_call_goes_through_and_success_closes(clock):
    transitions: list[str] = []
    b = breaker(clock, transitions, reset_timeout=30)
    fail(b, 5)
    clock.advance(30)

    trial = b.allow()
    assert b.state == HALF_OPEN
    with pytest.raises(CircuitOpen):  # only one trial at a time
        b.allow()
    trial.record(True)

    assert b.state == CLOSED
    assert transitions == [OPEN, HALF_OPEN, CLOSED]
    fail(b, 4)  # a closed circuit starts with an empty window
    assert b.state == CLOSED


def test_a_failed_trial_opens_the_circuit_for_another_reset_timeout(clock):
    b = breaker(clock, reset_timeout=30)
    fail(b, 5)
    clock.advance(30)
    b.allow().record(False)

    assert b.state == OPEN
    clock.advance(29)
    with pytest.raises(CircuitOpen):
        b.allow()
    clock.advance(1)
    assert b.allow().trial


def test_a_trial_that_never_reports_lets_another_through_after_a_reset(clock):
    b = breaker(clock, reset_timeout=30)
    fail(b, 5)
    clock.advance(30)
    b.allow()  # its thread died before it recorded anything
    clock.advance(30)

    assert b.allow().trial


def test_a_permit_counts_once(clock):
    b = breaker(clock)
    permit = b.allow()
    for _ in range(5):
        permit.record(False)
    assert b.state == CLOSED


def test_the_registry_keeps_one_breaker_per_caller_and_target(clock):
    registry = Registry(policy=Policy, clock=clock, listeners=())
    assert registry.get("orders", "inventory") is registry.get("orders", "inventory")
    assert registry.get("orders", "inventory") is not registry.get("orders", "payments")
    assert registry.get("orders", "inventory") is not registry.get("analytics", "inventory")


# --- what is technical -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "technical"),
    [
        (ServiceUnavailable("inventory"), True),
        (NoHealthyInstances("inventory"), True),
        (ServiceError("inventory", 500, None), True),
        (ServiceError("inventory", 502, None), True),
        (ServiceError("inventory", 429, None), True),
        (ServiceError("inventory", 400, None), False),
        (ServiceError("inventory", 404, None), False),
        (ServiceError("inventory", 409, None), False),
        (ValueError("a bug"), False),
    ],
)
def test_only_failures_of_the_wire_are_technical(failure, technical):
    assert is_technical(failure) is technical


def test_database_errors_at_the_limit_are_technical():
    from django.db import IntegrityError, InterfaceError, OperationalError

    assert is_technical(OperationalError("too many clients already"))
    assert is_technical(InterfaceError("connection already closed"))
    assert not is_technical(IntegrityError("duplicate key"))


# --- retries inside a budget ----------------------------------------------------------------


class Flaky:
    """Fails with `failure` the first `times` calls, then answers."""

    def __init__(self, clock, times: int, failure: Exception, cost: float = 0.0) -> None:
        self.clock = clock
        self.times = times
        self.failure = failure
        self.cost = cost
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        self.clock.advance(self.cost)
        if self.calls <= self.times:
            raise self.failure
        return "answer"


def retried(clock, attempt, *, budget=5.0, idempotent=True, attempts=3):
    return call_with_retries(
        attempt,
        budget=Budget(budget, clock=clock),
        policy=RetryPolicy(base=0.1, cap=1.0, attempts=attempts),
        idempotent=idempotent,
        sleep=clock.sleep,
    )


def test_an_idempotent_call_is_retried_after_a_technical_failure(clock):
    attempt = Flaky(clock, 2, ServiceUnavailable("inventory"))
    assert retried(clock, attempt) == "answer"
    assert attempt.calls == 3
    # full jitter: each wait is somewhere between 0 and the exponential bound
    assert len(clock.slept) == 2
    assert 0 <= clock.slept[0] <= 0.1
    assert 0 <= clock.slept[1] <= 0.2


def test_a_call_that_is_not_idempotent_is_made_once(clock):
    attempt = Flaky(clock, 1, ServiceUnavailable("inventory"))
    with pytest.raises(ServiceUnavailable):
        retried(clock, attempt, idempotent=False)
    assert attempt.calls == 1


def test_a_refusal_is_not_retried(clock):
    attempt = Flaky(clock, 1, ServiceError("inventory", 409, None))
    with pytest.raises(ServiceError):
        retried(clock, attempt)
    assert attempt.calls == 1


def test_an_open_circuit_is_not_retried(clock):
    attempt = Flaky(clock, 5, CircuitOpen("inventory", 30))
    with pytest.raises(CircuitOpen):
        retried(clock, attempt)
    assert attempt.calls == 1


def test_retries_stop_at_the_attempt_limit(clock):
    attempt = Flaky(clock, 10, ServiceUnavailable("inventory"))
    with pytest.raises(ServiceUnavailable):
        retried(clock, attempt, attempts=3)
    assert attempt.calls == 3


def test_no_call_outlives_its_budget_when_each_attempt_hangs(clock):
    budget = Budget(5.0, clock=clock)
    started = clock()
    calls = []

    def hanging():
        # each attempt waits its whole timeout, 3 s at most of what is left
        timeout = budget.attempt_timeout(3.0)
        calls.append(timeout)
        clock.advance(timeout)
        raise ServiceUnavailable("catalog")

    with pytest.raises(ServiceUnavailable):
        call_with_retries(
            hanging,
            budget=budget,
            policy=RetryPolicy(base=0.1, cap=1.0, attempts=3),
            idempotent=True,
            sleep=clock.sleep,
        )

    assert clock() - started <= 5.0
    assert calls[0] == 3.0
    assert len(calls) >= 2


def test_a_circuit_that_opens_between_attempts_reports_the_calls_own_failure(clock):
    failures = iter([ServiceError("inventory", 500, None), CircuitOpen("inventory", 30)])

    def attempt():
        raise next(failures)

    with pytest.raises(ServiceError) as failed:
        retried(clock, attempt)
    assert failed.value.status == 500
    assert not isinstance(failed.value, CircuitOpen)


# --- the balancer -----------------------------------------------------------------------


class Listed:
    def __init__(self, urls):
        self.urls = urls

    def instances(self, label):
        return list(self.urls)


def test_calls_go_round_robin_over_the_instances():
    balancer = Balancer(Listed(["http://a", "http://b", "http://c"]), start_prober=False)
    assert [balancer.choose("inventory") for _ in range(6)] == [
        "http://a",
        "http://b",
        "http://c",
        "http://a",
        "http://b",
        "http://c",
    ]


def test_an_ejected_instance_is_skipped_until_its_ready_probe_answers():
    ready = {"http://a": True, "http://b": False}
    balancer = Balancer(
        Listed(["http://a", "http://b"]), probe=lambda url: ready[url], start_prober=False
    )
    balancer.failed("http://b")

    assert {balancer.choose("inventory") for _ in range(4)} == {"http://a"}
    balancer.probe_once()
    assert balancer.ejected() == {"http://b"}

    ready["http://b"] = True
    balancer.probe_once()
    assert balancer.ejected() == set()
    assert {balancer.choose("inventory") for _ in range(4)} == {"http://a", "http://b"}


def test_with_every_instance_ejected_the_calls_still_go_out_for_the_breaker_to_judge():
    balancer = Balancer(Listed(["http://a", "http://b"]), start_prober=False)
    balancer.failed("http://a")
    balancer.failed("http://b")
    assert {balancer.choose("inventory") for _ in range(4)} == {"http://a", "http://b"}
