"""
The one backoff: how long to wait before the n-th retry of anything.

Every delay the platform waits after a failure comes from `delay()`: the
service client between two attempts of a call, the consumer before a failed
handler's next attempt, a saga after a participant's technical failure, the
driver before retrying a step that raised a bug. Each caller has its own
base and cap (settings), and they share one formula with one jitter.

The wait before the n-th retry is capped exponential with *equal jitter*:
`d = min(cap, base * 2**(n-1))`, then a uniform draw in `[d/2, d]`. Half of
it is fixed, so a retry never comes back at once (a database at its limit or
a context restarting gets at least half the wait), and half is random, so
many callers that failed together (one outage) do not come back together.
See docs/resilience.md.
"""

from __future__ import annotations

import random

__all__ = ["delay", "tenacity_wait"]

# 2**62 seconds already overflows any cap; a larger exponent is not computed
_MAX_EXPONENT = 62


def ceiling(attempt: int, *, base: float, cap: float) -> float:
    """The longest wait before retry `attempt` (1 for the first retry)."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    return min(cap, base * 2**exponent)


def delay(attempt: int, *, base: float, cap: float, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry `attempt`: uniform in `[c/2, c]`, c the ceiling."""
    top = ceiling(attempt, base=base, cap=cap)
    return (rng or random).uniform(top / 2, top)


def tenacity_wait(*, base: float, cap: float):
    """`delay()` as a tenacity wait strategy (the attempt tenacity just made failed)."""

    def wait(retry_state) -> float:
        return delay(retry_state.attempt_number, base=base, cap=cap)

    return wait
