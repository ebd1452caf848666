"""`manage.py run_split` started by a test, as a user starts it, and stopped again."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.support.live import ROOT, wait_until


class Runner:
    """`manage.py run_split` in its own session, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, port: int, layout: list[str]) -> None:
        self.log = log
        self.groups = len(layout)
        self.out = log.open("wb")
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_split",
                "--port",
                str(port),
                "--layout",
                " ".join(layout),
            ],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self) -> dict[str, int]:
        def ready():
            if self.popen.poll() is not None:
                raise AssertionError(f"run_split exited:\n{self.output()[-6000:]}")
            return f"Cleave is split into {self.groups} groups" in self.output()

        wait_until(ready, timeout=240, every=0.5, what="the split to be ready")
        pids = {}
        for line in self.output().splitlines():
            match = re.match(r"^(\S+\.(?:web|worker|relay)|gateway)\s+\S+\s+\S+\s+(\d+)\s", line)
            if match:
                pids[match.group(1)] = int(match.group(2))
        return pids

    def stop(self) -> int:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self.out.close()
        return self.popen.returncode


def free_base_port(count: int) -> int:
    """
    A port from which `count` consecutive ports are free, below Linux's
    ephemeral range (32768 and up), where the connections of other tests
    would otherwise take one of them between this check and run_split's.
    """
    import random
    import socket

    for _ in range(200):
        base = random.randint(20000, 32000 - count)
        try:
            for port in range(base, base + count):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise AssertionError(f"no {count} consecutive free ports below 32000")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def delete_queues(url: str, prefix: str) -> None:
    from kombu import Connection

    labels = ["users", "catalog", "inventory", "orders", "payments", "notifications", "analytics"]
    with contextlib.suppress(Exception), Connection(url, connect_timeout=3) as conn:
        channel = conn.channel()
        for name in [f"{prefix}{label}" for label in labels] + [f"{prefix}celery"]:
            for queue in (name, f"{name}.dead"):
                with contextlib.suppress(Exception):
                    channel.queue_delete(queue)
        for exchange in ("cleave.events", "cleave.dead", "celery"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(f"{prefix}{exchange}")
