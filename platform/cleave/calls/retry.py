"""
Retries inside a time budget, with tenacity.

A service call has one budget (`CLEAVE_SERVICE_TIMEOUT`, 5 s) for all its
attempts. Each attempt gets at most `CLEAVE_BREAKER_CALL_TIMEOUT` (3 s) of
what is left. After a technical failure an idempotent call waits the
platform's one backoff (`cleave.core.backoff`: capped exponential, equal
jitter) and tries again, unless the wait would leave too little of the budget
for another attempt. tenacity runs the loop.
A `CircuitOpen` is never retried: the breaker said no attempt should be made.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import tenacity
from django.conf import settings

from cleave.core.backoff import tenacity_wait
from cleave.core.errors import CircuitOpen, is_technical

T = TypeVar("T")

# An attempt given less time than this could not succeed anyway.
MIN_ATTEMPT_SECONDS = 0.05


class Budget:
    """A deadline measured on `clock`: what is left of `seconds` from now."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self.ends = clock() + seconds

    def remaining(self) -> float:
        return max(0.0, self.ends - self.clock())

    def attempt_timeout(self, per_attempt: float) -> float:
        return min(per_attempt, self.remaining())


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 0.1
    cap: float = 1.0
    attempts: int = 3

    @classmethod
    def from_settings(cls) -> RetryPolicy:
        return cls(
            base=settings.CLEAVE_RETRY_BASE,
            cap=settings.CLEAVE_RETRY_MAX,
            attempts=settings.CLEAVE_RETRY_ATTEMPTS,
        )


def retryable(exc: BaseException) -> bool:
    """A technical failure that another attempt may cure (an open circuit is not one)."""
    return is_technical(exc) and not isinstance(exc, CircuitOpen)


def call_with_retries(
    attempt: Callable[[], T],
    *,
    budget: Budget,
    policy: RetryPolicy,
    idempotent: bool,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """
    Call `attempt()` until it returns, raises a failure that is not retryable,
    `policy.attempts` were made, or the budget cannot hold another attempt;
    re-raise the last failure. When the circuit opens between two attempts of
    one call, the call fails with what its own last attempt met, not with
    `CircuitOpen`.
    """
    if not idempotent:
        return attempt()
    failures: list[BaseException] = []

    def recorded() -> T:
        try:
            return attempt()
        except Exception as exc:
            if retryable(exc):
                failures.append(exc)
            raise

    def out_of_budget(state: tenacity.RetryCallState) -> bool:
        left = budget.remaining() - (state.upcoming_sleep or 0.0)
        return left < MIN_ATTEMPT_SECONDS

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception(retryable),
        wait=tenacity_wait(base=policy.base, cap=policy.cap),
        stop=tenacity.stop_after_attempt(policy.attempts) | out_of_budget,
        sleep=sleep,
        reraise=True,
    )
    try:
        return retrying(recorded)
    except CircuitOpen:
        if failures:
            raise failures[-1] from None
        raise
