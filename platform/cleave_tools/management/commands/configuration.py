"""
`manage.py configuration [--check]`: docs/configuration.md's tables, rendered
from the declared settings (`cleave.core.conf` and each context's `conf.py`).

    configuration            write the tables
    configuration --check    fail when they are stale, when the code reads a
                             variable nobody declared, or a declaration is read
                             by nothing

`make lint` runs it with `--check`. See cleave_tools.checks.configuration.
"""

from __future__ import annotations

import difflib
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave_tools.checks import configuration


def default_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "configuration.md"


class Command(BaseCommand):
    help = "Render docs/configuration.md's tables from the declared settings (--check: compare)."

    def add_arguments(self, parser):
        parser.add_argument("--check", action="store_true", help="fail if anything is stale")
        parser.add_argument("--path", type=Path, default=None)

    def handle(self, *args, check: bool, path: Path | None, **options):
        path = path or default_path()
        if not path.exists():
            raise CommandError(
                f"{path} does not exist: it holds the hand-written prose around the "
                f"generated blocks ({', '.join(configuration.BLOCKS)})"
            )
        declared = configuration.gather(
            package=settings.CLEAVE_CONTEXT_PACKAGE, labels=settings.CLEAVE_ALL_CONTEXTS
        )
        current = path.read_text()
        try:
            fresh = configuration.render(current, declared)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not check:
            if fresh != current:
                path.write_text(fresh)
                self.stdout.write(f"Wrote {path}.")
            else:
                self.stdout.write(f"{path.name} was up to date.")
            return
        problems = configuration.problems(Path(settings.BASE_DIR), declared)
        if fresh != current:
            difference = "".join(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    fresh.splitlines(keepends=True),
                    fromfile=f"{path.name} (committed)",
                    tofile=f"{path.name} (from the declarations)",
                )
            )
            problems.append(
                f"{path} is out of date with the declared settings; run "
                f"`python manage.py configuration`.\n{difference[:4000]}"
            )
        if problems:
            raise CommandError("\n".join(problems))
        self.stdout.write(f"{path.name} is up to date with the declared settings.")
