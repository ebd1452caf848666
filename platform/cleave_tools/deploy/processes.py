"""
Run a set of processes in the foreground, as one: `make run-split`'s runner.

Each process is started directly (no shell) in a session of its own, its
output read line by line, shown prefixed with the time and its name and
appended to its log file. When one of them exits, or this process is asked to
stop (SIGINT, SIGTERM), every other one gets SIGTERM, then SIGKILL after a
grace period; the exit code is the first non-zero one.

Written by hand, in place of honcho (which the project used before): honcho's
manager runs every command in a forked copy of the process that starts it
(multiprocessing) under a shell, so a split of seven groups held 24 copies of
a Django process (1.9 GiB of the 4.6 GiB it held in all, measured). The job
itself is small: Popen, one reader thread per process, and signals.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path | None = None
    popen: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen is not None else None


class Runner:
    """Start, watch and stop a set of processes (see the module docstring)."""

    def __init__(
        self,
        *,
        cwd: Path,
        out: TextIO = sys.stdout,
        grace: float = 10.0,
        clock: Callable[[], str] = lambda: time.strftime("%H:%M:%S"),
    ) -> None:
        self.cwd = cwd
        self.out = out
        self.grace = grace
        self.clock = clock
        self.children: list[Child] = []
        self.returncode: int | None = None
        self._lock = threading.Lock()
        self._ended = threading.Event()
        self._width = 0

    def add(self, name: str, argv: list[str], env: dict[str, str], log: Path | None = None) -> None:
        self.children.append(Child(name, argv, env, log))
        self._width = max(self._width, len(name))

    def pids(self) -> dict[str, int | None]:
        return {child.name: child.pid for child in self.children}

    def say(self, name: str, line: str) -> None:
        with self._lock:
            self.out.write(f"{self.clock()} {name.ljust(self._width)} | {line}\n")
            self.out.flush()

    def start(self) -> None:
        for child in self.children:
            log = child.log.open("a", buffering=1) if child.log is not None else None
            child.popen = subprocess.Popen(  # noqa: S603 - our own argv, no shell
                child.argv,
                cwd=self.cwd,
                env=child.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                bufsize=1,
                # its own session: a signal to this process (Ctrl-C) is not also
                # the child's; the runner stops it itself, in order
                start_new_session=True,
            )
            self.say(child.name, f"started with pid {child.popen.pid}")
            threading.Thread(
                target=self._read, args=(child, log), name=f"run-{child.name}", daemon=True
            ).start()

    def _read(self, child: Child, log: TextIO | None) -> None:
        assert child.popen is not None and child.popen.stdout is not None
        for line in child.popen.stdout:
            line = line.rstrip("\n")
            self.say(child.name, line)
            if log is not None:
                log.write(line + "\n")
        code = child.popen.wait()
        if log is not None:
            log.close()
        self.say(child.name, f"stopped (exit code {code})")
        with self._lock:
            if self.returncode is None or (self.returncode == 0 and code not in (0, -15)):
                self.returncode = 0 if code in (0, -signal.SIGTERM) else code
        self._ended.set()  # one gone: everything stops

    def wait(self) -> int:
        """Until a process exits or SIGINT/SIGTERM arrives; then stop them all."""
        previous = {
            sig: signal.signal(sig, lambda *_: self._ended.set())
            for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            self._ended.wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()
        return self.returncode or 0

    def stop(self) -> None:
        """SIGTERM to every running process, SIGKILL to those left after the grace period."""
        running = [c for c in self.children if c.popen is not None and c.popen.poll() is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + self.grace
        for child in running:
            try:
                child.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(child.name, "did not stop in time: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.popen.pid, signal.SIGKILL)
                child.popen.wait()
