"""
`manage.py status`: what needs attention in every context, as the admin's
"needs attention" page shows it (the rules: `cleave.runtime.state`).

    manage.py status            text: what needs attention, then every context's figures
    manage.py status --json     the same as JSON (the admin's attention.json)
    manage.py status --check    exit with status 1 when anything needs attention
"""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError

from cleave.management import arguments
from cleave.runtime import state


class Command(BaseCommand):
    help = (
        "What needs attention in every context: failed, overdue, stalled and waiting sagas, "
        "dead letters not redriven, outbox backlogs, databases that cannot be read."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="the report as JSON")
        parser.add_argument(
            "--limit",
            type=arguments.count,
            default=state.LIMIT,
            help=f"rows listed per kind and context (default {state.LIMIT}; counts are exact)",
        )
        parser.add_argument(
            "--check",
            action="store_true",
            help="exit with status 1 when anything needs attention (for a cron job or a probe)",
        )

    def handle(self, *args, json=False, limit=state.LIMIT, check=False, **options):
        report = state.attention(limit=limit)
        if json:
            self.stdout.write(_json(report.to_dict()))
        else:
            self._text(report)
        if check and not report.healthy:
            raise CommandError(f"{len(report.items)} item(s) need attention.", returncode=1)

    def _text(self, report: state.Report) -> None:
        now = report.checked_at
        write = self.stdout.write
        write(f"Checked at {state.timestamp(now)}, in {len(report.contexts)} context(s).")
        if report.healthy:
            write("All clear: nothing needs attention in any context.")
        for kind, heading, items in report.by_kind():
            count = report.count(kind)
            shown = f"{count}" if count == len(items) else f"{len(items)} of {count}"
            write("")
            write(f"{heading} ({shown}):")
            for item in items:
                since = (
                    f"  since {state.timestamp(item.since)} "
                    f"({state.age((now - item.since).total_seconds())})"
                    if item.since
                    else ""
                )
                write(f"  [{item.context}] {item.title}{since}")
                if item.detail:
                    write(f"      {item.detail}")
                if item.link:
                    write(f"      {item.link}")
        write("")
        columns = ("outbox", "oldest", "dead", "failed", "overdue", "stalled", "waiting")
        write(f"{'context':<14}" + "".join(f"{c:>10}" for c in columns))
        for context in report.contexts:
            if context.error:
                write(f"{context.label:<14}unavailable: {context.error}")
                continue
            sagas = context.sagas
            cells = (
                context.outbox.pending,
                state.age(context.outbox.age(now)) if context.outbox.oldest else "-",
                context.dead_letters,
                sagas.get(state.SAGA_FAILED, 0),
                sagas.get(state.COMPENSATION_OVERDUE, 0) + sagas.get(state.SAGA_OVERDUE, 0),
                sagas.get(state.SAGA_STALLED, 0),
                sagas.get(state.SAGA_WAITING, 0),
            )
            write(f"{context.label:<14}" + "".join(f"{cell!s:>10}" for cell in cells))


def _json(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)
