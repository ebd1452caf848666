"""
`manage.py run_split [--port 8000] [--layout "users,catalog orders,payments ..."]`

Run every context as its own process group behind a generated nginx gateway
on one port (see cleave_tools.deploy.split). `make run-split` sets it up and calls this.
Ctrl-C or SIGTERM stops every process it started.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave_tools.deploy import split


class Command(BaseCommand):
    help = "Run every context as its own process group behind an nginx gateway on one port."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
        parser.add_argument(
            "--layout",
            default=os.environ.get("SPLIT", ""),
            help='groups separated by spaces, contexts by commas ("users,catalog orders,payments '
            'inventory notifications,analytics"); default: one group per context',
        )
        parser.add_argument("--threads", type=int, default=split.DEFAULT_THREADS)
        parser.add_argument("--no-seed", action="store_true", help="do not load the demo data")

    def handle(self, *args, port, layout, threads, no_seed, **options):
        if not 1 <= port <= 65535 - len(settings.CLEAVE_ALL_CONTEXTS):
            raise CommandError(f"--port must leave room for the groups' ports, not {port}")
        if settings.CLEAVE_CONTEXTS != settings.CLEAVE_ALL_CONTEXTS:
            raise CommandError("run_split starts every context itself: unset CLEAVE_CONTEXTS")
        root = Path(settings.BASE_DIR)
        try:
            plan = split.make_plan(
                root=root,
                data_dir=Path(settings.DATA_DIR),
                port=port,
                layout=layout,
                known=list(settings.CLEAVE_ALL_CONTEXTS),
                threads=threads,
            )
            split.preflight(plan)
            split.prepare(plan, write=self.stdout.write)
        except split.SplitError as exc:
            raise CommandError(str(exc)) from None
        self._run(plan, seed=not no_seed)

    def _run(self, plan: split.Plan, *, seed: bool) -> None:
        """
        Hand over to `python -m cleave_tools.deploy.split <plan>`, which runs
        the processes: what needed Django (the plan, the migrations, the
        gateway's configuration) is done, and a runner holding a whole Django
        process the split's life long would weigh as much as one more group.
        """
        seeding = (
            split.seeded_contexts(
                list(settings.CLEAVE_ALL_CONTEXTS), package=settings.CLEAVE_CONTEXT_PACKAGE
            )
            if seed
            else []
        )
        plan_file = plan.split_dir / "plan.json"
        split.save(plan, plan_file, seeding=seeding)
        sys.stdout.flush()
        os.execv(  # noqa: S606 - our own interpreter and module
            plan.python, [plan.python, "-m", "cleave_tools.deploy.split", str(plan_file)]
        )
