"""
`manage.py run_split [--port 8000] [--layout "users,catalog orders,payments ..."]`

Run every context as its own process group behind a generated nginx gateway
on one port (see cleave_tools.deploy.split). `make run-split` sets it up and calls this.
Ctrl-C or SIGTERM stops every process it started.
"""

from __future__ import annotations

import os
import shlex
import sys
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager
from honcho.printer import Printer

from cleave_tools.deploy import split


class _LoggingPrinter:
    """honcho's printer, also appending each process's lines to its own log file."""

    def __init__(self, plan: split.Plan) -> None:
        self.plan = plan
        self.printer = Printer(sys.stdout)
        self.files: dict[str, object] = {}
        self.lock = threading.Lock()

    @property
    def width(self):
        return self.printer.width

    @width.setter
    def width(self, value):
        self.printer.width = value

    def write(self, message) -> None:
        self.printer.write(message)
        name = message.name
        if not name or name == "system":
            return
        data = message.data
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        with self.lock:
            handle = self.files.get(name)
            if handle is None:
                handle = self.files[name] = self.plan.log_file(name).open("a", buffering=1)
            handle.write(data if data.endswith("\n") else data + "\n")


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
        manager = Manager(printer=_LoggingPrinter(plan))
        for name, argv, env in plan.commands():
            manager.add_process(name, " ".join(_quote(arg) for arg in argv), env=env, cwd=plan.root)
        stop = threading.Event()

        def announce() -> None:
            if not split.wait_ready(plan, stop=stop):
                if not stop.is_set():
                    self.stderr.write("The split did not become ready: see the logs above.")
                return
            try:
                if seed:
                    split.seed(
                        plan,
                        list(settings.CLEAVE_ALL_CONTEXTS),
                        package=settings.CLEAVE_CONTEXT_PACKAGE,
                        write=self.stdout.write,
                    )
            except split.SplitError as exc:
                self.stderr.write(str(exc))
            # honcho keeps the pids it started in its process table
            pids = {name: entry.get("pid") for name, entry in manager._processes.items()}
            self.stdout.write("\n" + split.table(plan, pids) + "\n")
            self.stdout.write(
                f"Cleave is split into {len(plan.groups)} groups behind {plan.gateway_url} "
                "(Ctrl-C stops everything).",
            )
            self.stdout.write(split.operator_hints(plan))
            sys.stdout.flush()

        watcher = threading.Thread(target=announce, name="split-ready", daemon=True)
        watcher.start()
        try:
            manager.loop()
        finally:
            stop.set()
        sys.exit(manager.returncode or 0)


def _quote(arg: str) -> str:
    return shlex.quote(arg)
