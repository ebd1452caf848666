"""
`manage.py wait_for_migrations`: block until every database this process
serves is migrated, then exit 0; exit 1 with a message when the timeout
(`--timeout`, else `CLEAVE_MIGRATION_WAIT`; 0 does not wait) passes.

The image's `web`, `worker` and `relay` roles run it before they start (see
deploy/docker/entrypoint.sh), so a pod of a new release waits for its
migration Job instead of serving against tables that are not there yet. A
database that does not answer yet counts as not migrated: the pod may start
before its database, or before its mesh sidecar lets it out.
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import Error, connections

from cleave.core import conf
from cleave.management import arguments as cli
from cleave.management import migrations

# how often to say what is still waiting, in seconds
REPORT_EVERY = 15.0


class Command(BaseCommand):
    help = "Wait until the served databases are migrated (an image role's first step)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--database",
            action="append",
            dest="aliases",
            metavar="ALIAS",
            help="an alias to wait for (repeatable; default: every alias this process serves)",
        )
        parser.add_argument(
            "--timeout",
            type=cli.at_least_zero,
            default=None,
            help="give up after this many seconds (default: CLEAVE_MIGRATION_WAIT; 0: no wait)",
        )
        parser.add_argument(
            "--interval",
            type=cli.seconds,
            default=2.0,
            help="seconds between two looks (default 2)",
        )

    def handle(self, *args, aliases=None, timeout=None, interval=2.0, **options):
        if timeout is None:
            timeout = conf.value("CLEAVE_MIGRATION_WAIT")
        if not timeout:
            self.stdout.write("Not waiting for migrations (CLEAVE_MIGRATION_WAIT=0).")
            return
        aliases = aliases or list(connections.settings)
        unknown = sorted(set(aliases) - set(connections.settings))
        if unknown:
            raise CommandError(
                f"not a database alias of this process: {', '.join(unknown)} "
                f"(it serves {', '.join(connections.settings)})"
            )
        deadline = time.monotonic() + timeout
        reported = 0.0
        while True:
            waiting = self.waiting(aliases)
            if not waiting:
                self.stdout.write(f"Migrated: {', '.join(aliases)}.")
                return
            now = time.monotonic()
            if now >= deadline:
                raise CommandError(f"Still not migrated after {timeout:g}s: {describe(waiting)}")
            if now - reported >= REPORT_EVERY:
                self.stdout.write(f"Waiting for migrations: {describe(waiting)}")
                reported = now
            time.sleep(min(interval, max(0.0, deadline - now)))

    def waiting(self, aliases: list[str]) -> dict[str, str]:
        """What each alias still waits for, by alias (an empty dict: all are migrated)."""
        found = {}
        for alias in aliases:
            try:
                pending = migrations.plan(alias)
            except Error as exc:  # not reachable yet, or no migration table yet
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                found[alias] = f"not answering ({first[:120]})"
            else:
                if pending:
                    found[alias] = f"{len(pending)} migration(s) to apply"
            finally:
                connections[alias].close()
        return found


def describe(waiting: dict[str, str]) -> str:
    return "; ".join(f"{alias}: {what}" for alias, what in waiting.items())
