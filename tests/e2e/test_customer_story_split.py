"""
The customer story (tests/e2e/story.py) against a split deployment, started as
a user starts it (`manage.py run_split`, what `make run-split` runs): three
process groups — users+catalog; orders, payments, notifications and
analytics; inventory — each a web server, a Celery worker and a relay, events
over RabbitMQ, every context on its own database on the servers (orders on
MariaDB, the others on PostgreSQL), and the generated nginx gateway in front.
The story sees one base URL, as with the monolith. Stopping the runner must
leave no process behind.

It builds its own databases and broker queues, so CI runs it once.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from cleave.testing import require_server
from tests.integration.conftest import BROKERS, live_secrets  # noqa: F401 - the fixture
from tests.integration.live import ROOT, free_port, wait_until
from tests.integration.test_saga_concurrency import MARIADB, POSTGRES, Server

from .story import customer_story
from .test_customer_story import _mail_subjects

pytestmark = [pytest.mark.e2e, pytest.mark.services]

LAYOUT = ["users,catalog", "orders,payments,notifications,analytics", "inventory"]
ON_MARIADB = {"orders"}


@pytest.fixture
def databases():
    """A fresh database per context: orders on MariaDB, the others on PostgreSQL."""
    postgres, mariadb = Server(POSTGRES), Server(MARIADB)
    require_server("PostgreSQL", postgres.host, postgres.port)
    require_server("MariaDB", mariadb.host, mariadb.port)
    run = uuid.uuid4().hex[:8]
    made: list[tuple[Server, str]] = []
    urls = {}
    try:
        for group in LAYOUT:
            for label in group.split(","):
                server = mariadb if label in ON_MARIADB else postgres
                name = f"cleave_split_{run}_{label}"
                urls[f"{label.upper()}_DATABASE_URL"] = server.create(name)
                made.append((server, name))
        yield urls
    finally:
        for server, name in made:
            server.drop(name)


class Runner:
    """`manage.py run_split` in its own session, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.log = log
        self.out = log.open("wb")
        self.popen = subprocess.Popen(
            [
                sys.executable,
                "manage.py",
                "run_split",
                "--port",
                str(port),
                "--layout",
                " ".join(LAYOUT),
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
            return "Cleave is split into 3 groups" in self.output()

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


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_the_customer_story_split_behind_the_gateway(tmp_path, databases, live_secrets):  # noqa: F811
    amqp = BROKERS["rabbitmq"][0]
    require_server("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    port = free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith(("PYTEST", "CLEAVE_"))
    }
    env.update(databases)
    env.update(live_secrets)
    env.update(
        CLEAVE_DATA_DIR=str(tmp_path / "data"),
        CELERY_BROKER_URL=amqp,
        CLEAVE_EVENT_QUEUE_PREFIX=prefix,
        CLEAVE_THROTTLE_ANON="100000/minute",
        CLEAVE_THROTTLE_USER="100000/minute",
        CLEAVE_TRACING="off",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    runner = Runner(env, tmp_path / "run_split.log", port)
    pids: dict[str, int] = {}
    try:
        pids = runner.wait_ready()
        assert len(pids) == 3 * len(LAYOUT) + 1, runner.output()[-3000:]
        base = f"http://127.0.0.1:{port}"
        operator_env = {
            **env,
            "CLEAVE_CONTEXTS": LAYOUT[0],
            "CLEAVE_EVENT_TRANSPORT": "celery",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'split' / 'default.sqlite3'}",
        }

        def create_operator(username, email, password):
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "createsuperuser",
                    "--noinput",
                    "--username",
                    username,
                    "--email",
                    email,
                ],
                cwd=ROOT,
                env={**operator_env, "DJANGO_SUPERUSER_PASSWORD": password},
                check=True,
                capture_output=True,
                timeout=60,
            )

        result = customer_story(
            base,
            seed=lambda: None,  # run_split seeded the demo catalog and stock
            mail_subjects=lambda: _mail_subjects(tmp_path / "data" / "mail"),
            create_operator=create_operator,
        )
        assert result.confirmed_order["status"] == "confirmed"
        assert result.declined_order["cancellation_reason"] == "payment_declined"
    finally:
        returncode = runner.stop()
        _delete_queues(amqp, prefix)
    assert returncode in (0, 143, -15), runner.output()[-3000:]
    time.sleep(1)
    left = [name for name, pid in pids.items() if alive(pid)]
    for name in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pids[name], signal.SIGKILL)
    assert left == [], f"still running after run_split stopped: {left}"


def _delete_queues(url: str, prefix: str) -> None:
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
