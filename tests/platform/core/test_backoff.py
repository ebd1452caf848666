"""The one backoff every retry, redelivery and wait of the platform uses."""

from __future__ import annotations

import random

import pytest
import tenacity

from cleave.core.backoff import ceiling, delay, tenacity_wait


@pytest.mark.parametrize(
    ("attempt", "top"),
    [(1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (60, 1.0), (10_000, 1.0), (0, 0.1)],
)
def test_the_ceiling_doubles_per_attempt_up_to_the_cap(attempt, top):
    assert ceiling(attempt, base=0.1, cap=1.0) == pytest.approx(top)


def test_a_delay_is_half_fixed_half_random_below_the_ceiling():
    rng = random.Random(7)
    delays = [delay(3, base=1, cap=100, rng=rng) for _ in range(500)]

    assert all(2 <= d <= 4 for d in delays)
    assert min(delays) < 2.1 and max(delays) > 3.9, "the jitter spans the whole half"
    assert len({round(d, 6) for d in delays}) > 400, "jittered, not fixed"


def test_tenacity_waits_the_same_backoff_for_the_attempt_it_just_made():
    wait = tenacity_wait(base=1, cap=10)
    state = tenacity.RetryCallState(tenacity.Retrying(), fn=None, args=(), kwargs={})
    state.attempt_number = 4

    assert all(4 <= wait(state) <= 8 for _ in range(100))


def test_every_delay_of_the_platform_comes_from_the_one_backoff():
    # no module of the runtime draws its own jitter
    from pathlib import Path

    import cleave

    root = Path(cleave.__file__).parent
    drawing = [
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if "uniform(" in path.read_text() or "wait_random" in path.read_text()
    ]
    assert drawing == ["core/backoff.py"]
