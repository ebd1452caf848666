"""
A publishing process for the tests that run real workers, driven on stdin.

    python -m tests.support.publisher          # commands, one per line
    python -m tests.support.publisher relay    # the relay loop instead

Commands (each answers one line, `ok ...` or `error ...`):

    publish MODE FIRST COUNT [PAUSE]  COUNT probe events n=FIRST.., one transaction
                                      each, PAUSE seconds apart; answers "ok <ids>" once
                                      the relay thread has handled them
    hang-after-commit N               publish one event and hang where the relay thread
                                      would publish it (prints "committed <id>")
    hang-after-publish N              publish one event and hang once the broker
                                      confirmed it, before it is marked published
                                      (prints "published <id>")
    invalid N                         write an event whose payload breaks the schema,
                                      as a publisher on an older version would

Both modes import tests.support.probe, so they know the probe event and
declare its binding like every process that serves all contexts.
"""

from __future__ import annotations

import os
import sys
import time
import traceback


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    import tests.support.probe  # noqa: F401 - registers the probe event and handler


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _publish_one(n: int, mode: str) -> str:
    from django.db import transaction

    from cleave.messaging.publish import publish
    from tests.support.probe import PROBE

    with transaction.atomic(using="users"):
        return publish(PROBE, {"n": n, "mode": mode}).id


def _hang(label: str):
    def hang(*args, **kwargs):
        _say(label)
        time.sleep(3600)

    return hang


def run(command: str, args: list[str]) -> str:
    from cleave.messaging.broker import publisher
    from cleave.messaging.transports import get_transport

    transport = get_transport()
    if command == "publish":
        mode, first, count = args[0], int(args[1]), int(args[2])
        pause = float(args[3]) if len(args) > 3 else 0.0
        ids = []
        for n in range(first, first + count):
            ids.append(_publish_one(n, mode))
            if pause:
                time.sleep(pause)
        if hasattr(transport, "flush"):
            transport.flush(timeout=60)
        return "ok " + ",".join(ids)
    if command == "hang-after-commit":
        # the relay thread takes the committed event and hangs before publishing it
        def publish_committed(alias, envelopes):
            _say("committed " + ",".join(e.id for e in envelopes))
            time.sleep(3600)

        transport.publish_committed = publish_committed
        _publish_one(int(args[0]), "ok")
        time.sleep(3600)
        return "error not reached"
    if command == "hang-after-publish":
        original = publisher.EventPublisher.publish

        def publish(self, envelopes):
            result = original(self, envelopes)
            _say("published " + ",".join(result.confirmed))
            time.sleep(3600)

        publisher.EventPublisher.publish = publish
        _publish_one(int(args[0]), "ok")
        time.sleep(3600)
        return "error not reached"
    if command == "invalid":
        from django.db import transaction

        from cleave.messaging.models import OutboxEvent
        from tests.support.probe import PROBE

        with transaction.atomic(using="users"):
            row = OutboxEvent.objects.using("users").create(
                type=PROBE, version=1, source="users", data={"n": 0, "mode": "ok"}
            )
            transaction.on_commit(
                lambda: get_transport().committed("users", [row.id]), using="users"
            )
        return f"ok {row.id}"
    return f"error unknown command {command!r}"


def main() -> None:
    _setup()
    if sys.argv[1:] == ["relay"]:
        import threading

        from cleave.runtime import bootstrap

        _say("relay ready")
        bootstrap.relay(threading.Event())
        return
    _say("ready")
    for line in sys.stdin:
        parts = line.split()
        if not parts:
            continue
        try:
            _say(run(parts[0], parts[1:]))
        except Exception as exc:
            traceback.print_exc()
            _say(f"error {type(exc).__name__}: {exc}")


if __name__ == "__main__":
    main()
