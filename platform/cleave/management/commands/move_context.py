"""
`manage.py move_context <label> --to <database-url>`: move a context's alias
to another database while the system serves (`cleave.management.moving`).
"""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from cleave.core import locations
from cleave.management import moving


class Command(BaseCommand):
    help = (
        "Move a context's database to another server while the system serves: copy and "
        "verify its tables, pause its writes for the cut-over, and record the new location, "
        "which every running process follows."
    )

    def add_arguments(self, parser):
        parser.add_argument("label", help="The context to move (payments, orders, ...).")
        parser.add_argument(
            "--to",
            dest="url",
            help="The target database's URL (postgres://... or mysql://...), empty.",
        )
        parser.add_argument(
            "--release",
            action="store_true",
            help="Instead of moving: unfreeze the old database of an interrupted move.",
        )
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, label: str, url: str | None, release: bool, interactive: bool, **options):
        try:
            if release:
                journal = moving.release_unfinished(label)
                self.stdout.write(f"{label}: writes open again at {journal.source}")
                return
            if not url:
                raise CommandError("--to is required: the target database's URL")
            move = moving.prepare(label, url)
            self._describe(move)
            if interactive and not self._confirmed(move):
                raise CommandError("Move cancelled.")
            pause = moving.run(move, lambda line: self.stdout.write(f"  {line}"))
        except moving.Refused as exc:
            raise CommandError(f"{label} not moved: {exc}") from None
        rows = sum(t.rows for t in move.tables)
        self.stdout.write(
            self.style.SUCCESS(
                f"Moved {label} to {locations.shown(url)}: {rows} rows in {len(move.tables)} "
                f"tables; writes paused {pause:.2f} s."
            )
        )
        self.stdout.write(
            f"Running processes follow within {locations.POLL:.0f} s, or at their next write. "
            f"The old database is left as it was, marked as moved."
        )

    def _describe(self, move: moving.Move) -> None:
        source = moving.url_of(move.source.settings_dict)
        size = f", {moving.mib(move.size)}" if move.size is not None else ""
        free = (
            f"{moving.mib(move.free)} free"
            if move.free is not None
            else "free space unknown (not on this host)"
        )
        self.stdout.write(
            f"Moving {move.label}: {locations.shown(source)} ({move.source.vendor}{size}) -> "
            f"{locations.shown(move.url)} ({move.target.vendor}, {free}), "
            f"{len(move.tables)} tables"
            + (" (finishing an interrupted move)" if move.resuming else "")
        )

    def _confirmed(self, move: moving.Move) -> bool:
        answer = input(f"Pause {move.label}'s writes for the cut-over and move it? [y/N] ")
        return answer.strip().lower() in ("y", "yes")
