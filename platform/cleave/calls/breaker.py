"""
A circuit breaker per target context, shared by the threads of a process.

Written here rather than taken from a library: pybreaker holds its lock for
the whole protected call (so every thread calling one target would queue
behind the slowest call) and, like circuitbreaker and purgatory (asyncio),
opens after N *consecutive* failures. This breaker opens on a failure *rate*
over a window with a minimum volume, as the seed's does, and never holds its
lock during a call.

The window is the last `window_calls` outcomes younger than `window_seconds`.
Once it holds at least `min_calls` of them and at least `threshold` percent
failed, the circuit opens: every call fails at once with `CircuitOpen`, no
attempt is made. After `reset_timeout` one trial call goes through
(half-open); its success closes the circuit with an empty window, its failure
opens it again for another `reset_timeout`. A dependency that hangs therefore
trips the breaker within its first `min_calls` calls however far apart they
come, as long as they fall inside `window_seconds`.

Only technical failures count (connection refused or reset, timeouts, 5xx,
429); a 4xx answer is the callee's word on the request and counts as a success
of the wire. The caller decides which is which (`record(ok)`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings

from cleave.core.errors import CircuitOpen

logger = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"
# the gauge's value for each state (0 closed, 1 open, 2 half-open)
STATE_VALUES = {CLOSED: 0, OPEN: 1, HALF_OPEN: 2}

Listener = Callable[["CircuitBreaker", str, str], None]


@dataclass(frozen=True)
class Policy:
    """When a breaker opens and for how long."""

    threshold: int = 50  # percent of failed calls in the window
    min_calls: int = 5
    window_calls: int = 10
    window_seconds: float = 60.0
    reset_timeout: float = 30.0

    @classmethod
    def from_settings(cls) -> Policy:
        return cls(
            threshold=settings.CLEAVE_BREAKER_ERROR_THRESHOLD,
            min_calls=settings.CLEAVE_BREAKER_MIN_CALLS,
            window_calls=max(
                settings.CLEAVE_BREAKER_WINDOW_CALLS, settings.CLEAVE_BREAKER_MIN_CALLS
            ),
            window_seconds=settings.CLEAVE_BREAKER_WINDOW_SECONDS,
            reset_timeout=settings.CLEAVE_BREAKER_RESET_TIMEOUT,
        )


class Permit:
    """Leave to make one attempt; report its outcome with `record()` exactly once."""

    __slots__ = ("_breaker", "_done", "trial")

    def __init__(self, breaker: CircuitBreaker, trial: bool) -> None:
        self._breaker = breaker
        self.trial = trial
        self._done = False

    def record(self, ok: bool) -> None:
        if not self._done:
            self._done = True
            self._breaker._record(ok, self.trial)


class CircuitBreaker:
    """The breaker of calls from `caller` to `target` (see the module docstring)."""

    def __init__(
        self,
        target: str,
        *,
        caller: str = "",
        policy: Policy | None = None,
        clock: Callable[[], float] = time.monotonic,
        listeners: tuple[Listener, ...] = (),
    ) -> None:
        self.target = target
        self.caller = caller
        self.policy = policy or Policy()
        self.clock = clock
        self.listeners = listeners
        self.state = CLOSED
        self._lock = threading.Lock()
        self._outcomes: deque[tuple[float, bool]] = deque(maxlen=self.policy.window_calls)
        self._opened_at = 0.0
        # when the half-open trial was let through; a trial whose outcome never
        # comes back (its thread died) lets another one through after a reset
        self._trial_at: float | None = None

    def __repr__(self) -> str:
        return f"<CircuitBreaker {self.caller}->{self.target} {self.state}>"

    def allow(self) -> Permit:
        """A permit for one attempt, or `CircuitOpen` at once while the circuit is open."""
        changed = None
        with self._lock:
            now = self.clock()
            if self.state == OPEN:
                waited = now - self._opened_at
                if waited < self.policy.reset_timeout:
                    raise CircuitOpen(self.target, self.policy.reset_timeout - waited)
                changed = self._move(HALF_OPEN)
            if self.state == HALF_OPEN:
                stale = (
                    self._trial_at is not None and now - self._trial_at >= self.policy.reset_timeout
                )
                if self._trial_at is not None and not stale:
                    raise CircuitOpen(
                        self.target, self.policy.reset_timeout - (now - self._trial_at)
                    )
                self._trial_at = now
                permit = Permit(self, trial=True)
            else:
                permit = Permit(self, trial=False)
        if changed:
            self._notify(*changed)
        return permit

    def retry_after(self) -> float:
        """Seconds until the next trial call may go through (0 unless open)."""
        with self._lock:
            if self.state != OPEN:
                return 0.0
            return max(0.0, self.policy.reset_timeout - (self.clock() - self._opened_at))

    def _record(self, ok: bool, trial: bool) -> None:
        changed = None
        with self._lock:
            now = self.clock()
            if self.state == HALF_OPEN:
                if trial:
                    self._trial_at = None
                    changed = self._move(CLOSED if ok else OPEN, now)
            elif self.state == CLOSED:
                self._outcomes.append((now, ok))
                if not ok and self._tripped(now):
                    changed = self._move(OPEN, now)
            # an outcome that arrives while open (a call let through before) changes nothing
        if changed:
            self._notify(*changed)

    def _tripped(self, now: float) -> bool:
        horizon = now - self.policy.window_seconds
        while self._outcomes and self._outcomes[0][0] < horizon:
            self._outcomes.popleft()
        calls = len(self._outcomes)
        if calls < self.policy.min_calls:
            return False
        failed = sum(1 for _, ok in self._outcomes if not ok)
        return failed * 100 >= self.policy.threshold * calls

    def _move(self, state: str, now: float | None = None) -> tuple[str, str] | None:
        """Change state (under the lock); return (old, new) for the listeners."""
        old = self.state
        if old == state:
            return None
        self.state = state
        if state == OPEN:
            self._opened_at = self.clock() if now is None else now
        if state == CLOSED:
            self._outcomes.clear()
        return old, state

    def _notify(self, old: str, new: str) -> None:
        for listener in self.listeners:
            try:
                listener(self, old, new)
            except Exception:  # a metric or a log line must never fail a call
                logger.exception("Circuit breaker listener failed")


def log_transition(breaker: CircuitBreaker, old: str, new: str) -> None:
    level = logging.WARNING if new == OPEN else logging.INFO
    logger.log(
        level,
        "Circuit %s -> %s %s (was %s)",
        breaker.caller or "?",
        breaker.target,
        new,
        old,
        extra={"target_service": breaker.target, "circuit_state": new},
    )


class Registry:
    """This process's breakers, one per (caller, target); a forked child starts afresh."""

    def __init__(
        self,
        *,
        policy: Callable[[], Policy] = Policy.from_settings,
        clock: Callable[[], float] = time.monotonic,
        listeners: tuple[Listener, ...] = (log_transition,),
        on_create: Callable[[CircuitBreaker], None] | None = None,
    ) -> None:
        self._policy = policy
        self._on_create = on_create
        self._clock = clock
        self._listeners = listeners
        self._lock = threading.Lock()
        self._breakers: dict[tuple[str, str], CircuitBreaker] = {}

    def get(self, caller: str, target: str) -> CircuitBreaker:
        key = (caller, target)
        breaker = self._breakers.get(key)
        if breaker is None:
            with self._lock:
                breaker = self._breakers.get(key)
                if breaker is None:
                    breaker = CircuitBreaker(
                        target,
                        caller=caller,
                        policy=self._policy(),
                        clock=self._clock,
                        listeners=self._listeners,
                    )
                    self._breakers[key] = breaker
                    if self._on_create is not None:
                        self._on_create(breaker)
        return breaker

    def all(self) -> list[CircuitBreaker]:
        with self._lock:
            return list(self._breakers.values())

    def clear(self) -> None:
        with self._lock:
            self._breakers.clear()
