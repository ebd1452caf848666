"""
A test-only event type and its handler, for the tests that run real workers.

Workers load it with `celery -A config worker --include tests.support.probe`;
the publisher and relay processes (tests/support/publisher.py) import it.
The event `probe.ticked` is published by the users context; its handler lives
in the analytics context (its module is re-homed there) and adds 1 to the
analytics counter `probe:<n>` in the handler's transaction, so "exactly once in
effect" is a counter whose value is 1.

The payload's `mode` and flag files in `$CLEAVE_DATA_DIR/probe/` steer it:

- `ok`: count;
- `noop`: nothing beyond the inbox record (the benchmark's trivial handler);
- `slow`: note the start (`started-<n>`, one line per start), count, and on
  the first start hang before committing, so a test can kill the worker;
- `flaky`: raise while the flag file `broken` exists, count otherwise.

`n` must be a positive integer, unless the flag file `schema-fixed` exists:
a consumer deployed with a schema that accepts what an older publisher sent.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from cleave.core.declarations import POSITIVE_INT, STRING, EventType, obj
from cleave.messaging import subscriptions, types
from cleave.messaging.envelope import Envelope

PROBE = "probe.ticked"
HANDLER = "contexts.analytics.handlers.probe_ticked"


def flags() -> Path:
    path = Path(settings.DATA_DIR) / "probe"
    path.mkdir(exist_ok=True)
    return path


@dataclass(frozen=True)
class ProbeType(EventType):
    def validate(self, data) -> None:
        if (flags() / "schema-fixed").exists():
            return
        super().validate(data)


def _register() -> None:
    schema = obj({"n": POSITIVE_INT, "mode": STRING})
    types.register(EventType(PROBE, schema=schema), context="users")
    # the registry stores a plain EventType; keep the flag-aware one instead
    types._types[PROBE] = ProbeType(PROBE, schema=schema, context="users")


def probe_ticked(envelope: Envelope) -> None:
    from contexts.analytics import commands

    n, mode = envelope.data["n"], envelope.data.get("mode", "ok")
    if mode == "noop":
        return
    if mode == "flaky" and (flags() / "broken").exists():
        raise RuntimeError(f"probe {n} is broken")
    commands.counter_add(name=f"probe:{n}")
    if mode == "slow":
        started = flags() / f"started-{n}"
        first = not started.exists()
        with started.open("a") as out:
            out.write(f"{os.getpid()}\n")
        if first:
            time.sleep(120)  # killed here, before the transaction commits


probe_ticked.__module__ = "contexts.analytics.handlers"
_register()
subscriptions.subscriber(PROBE)(probe_ticked)
