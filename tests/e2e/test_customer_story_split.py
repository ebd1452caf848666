"""
The customer story (tests/support/story.py) against a split deployment, started as
a user starts it (`manage.py run_split`, what `make run-split` runs): three
process groups — users+catalog; orders, payments, notifications and
analytics; inventory — each a web server, a Celery worker and a relay, events
over RabbitMQ, every context on its own database on the servers (orders on
MariaDB, the others on PostgreSQL), and the generated nginx gateway in front.
The story sees one base URL, as with the monolith. Then the operator's story
(tests/support/console.py) runs in headless Chromium through the same gateway,
as it does against the monolith in tests/e2e/test_operator_console.py.
Stopping the runner must leave no process behind.

It builds its own databases and broker queues, so CI runs it once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from cleave.testing import require_server
from tests.e2e.test_customer_story import _mail_subjects
from tests.e2e.test_operator_console import screenshots
from tests.integration.conftest import BROKERS, live_secrets  # noqa: F401 - the fixture
from tests.integration.test_saga_concurrency import MARIADB, POSTGRES, Server
from tests.support.browser import chromium
from tests.support.console import FAILING_FAST, Fault, operator_console_story
from tests.support.live import ROOT
from tests.support.running_split import Runner, alive, delete_queues, free_base_port
from tests.support.story import customer_story

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


def test_the_customer_story_split_behind_the_gateway(tmp_path, databases, live_secrets):  # noqa: F811
    amqp = BROKERS["rabbitmq"][0]
    require_server("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"t{uuid.uuid4().hex[:8]}."
    port = free_base_port(len(LAYOUT) + 2)  # the groups, the console, the gateway
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
        **FAILING_FAST,
    )
    runner = Runner(env, tmp_path / "run_split.log", port, LAYOUT)
    pids: dict[str, int] = {}
    try:
        pids = runner.wait_ready()
        # each group's web server and worker, the admin console and the gateway
        assert len(pids) == 2 * len(LAYOUT) + 2, runner.output()[-3000:]
        base = f"http://127.0.0.1:{port}"

        def create_operator(username, email, password):
            # as `make run-split` says: the command reaches the split's data
            subprocess.run(
                [
                    sys.executable,
                    "manage.py",
                    "--split",
                    "createsuperuser",
                    "--noinput",
                    "--username",
                    username,
                    "--email",
                    email,
                ],
                cwd=ROOT,
                env={**env, "DJANGO_SUPERUSER_PASSWORD": password},
                check=True,
                capture_output=True,
                timeout=60,
            )

        result = customer_story(
            base,
            seed=lambda: None,  # run_split seeded the demo catalog and stock
            # the split's mail is its own
            mail_subjects=lambda: _mail_subjects(tmp_path / "data" / "split" / "mail"),
            create_operator=create_operator,
        )
        assert result.confirmed_order["status"] == "confirmed"
        assert result.declined_order["cancellation_reason"] == "payment_declined"

        with chromium(tmp_path) as driver:
            operator_console_story(
                driver,
                base,
                result,
                fault=renamed_table(databases["ANALYTICS_DATABASE_URL"], "analytics_counter"),
                shots=screenshots(tmp_path),
                mode="split",
            )
    finally:
        returncode = runner.stop()
        delete_queues(amqp, prefix)
    assert returncode in (0, 143, -15), runner.output()[-3000:]
    time.sleep(1)
    left = [name for name, pid in pids.items() if alive(pid)]
    for name in left:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pids[name], signal.SIGKILL)
    assert left == [], f"still running after run_split stopped: {left}"


def renamed_table(url: str, table: str) -> Fault:
    """A table of one context's PostgreSQL database renamed away and back."""
    import psycopg

    def rename(old: str, new: str) -> None:
        with psycopg.connect(
            url.replace("postgres://", "postgresql://", 1), autocommit=True
        ) as conn:
            conn.execute(f'ALTER TABLE "{old}" RENAME TO "{new}"')

    return Fault(
        cause=lambda: rename(table, f"{table}_away"), mend=lambda: rename(f"{table}_away", table)
    )
