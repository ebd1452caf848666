"""
Moving a context's database while the shop sells (`manage.py move_context`):
payments from SQLite to PostgreSQL and orders from SQLite to MariaDB, with
two buyers checking out all along, in the monolith (two gunicorn workers) and
in a split (payments a group of its own, orders in the shop group, events
over RabbitMQ). No process is restarted.

While a context's writes are paused its API answers 503 with `Retry-After`,
which the buyers (patient clients) wait out. After each move, whatever it met:
no order stranded or charged twice, the stock is what was sold, every ending
counted once by analytics and notifications, nothing dead-lettered; the
running processes opened their connections at the new location, a process
started later with the old environment does too, and the old database keeps
its rows and refuses writes. Bad input is refused with a message, never a
traceback. (The pause's length is measured by bench/move.py, not asserted.)

Needs PostgreSQL and MariaDB (and RabbitMQ for the split).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sqlite3
import subprocess
import time

import pytest
import requests

from tests.support.live import PYTHON, ROOT, LiveSystem
from tests.support.moving import POSTGRES, Shop, Targets, Urls, fill_outbox
from tests.support.split import FAST, SplitSystem
from tests.support.traffic import Traffic, check_invariants, settled

pytestmark = pytest.mark.services


@contextlib.contextmanager
def installation(tmp_path, broker: str, template, secrets):
    """A live installation on `broker` and fresh databases to move to; all gone after."""
    from tests.integration.conftest import make_live

    targets = Targets()
    manager, live = make_live(tmp_path, broker, template, secrets)
    try:
        yield live, targets
    finally:
        manager.__exit__(None, None, None)
        targets.drop()


def move(shop: Shop, label: str, url: str, env: dict | None = None) -> float:
    """Move `label` to `url` with the live system's environment; the pause it reports."""
    result = shop.live.manage("move_context", label, "--to", url, "--noinput", env=env)
    assert "Traceback" not in result.stderr, result.stderr
    shop.where[label] = url
    pause = re.search(r"writes paused ([\d.]+) s", result.stdout)
    assert pause, result.stdout
    return float(pause.group(1))


def orders_in(shop: Shop) -> int:
    return shop.sql("orders", "SELECT count(*) FROM orders_order")[0][0]


def payments_in(shop: Shop) -> int:
    return shop.sql("payments", "SELECT count(*) FROM payments_payment")[0][0]


def frozen_rows(live: LiveSystem, alias: str, table: str) -> int:
    path = live.data_dir / f"{alias}.sqlite3"
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        with pytest.raises(sqlite3.DatabaseError, match="cleave: context moved"):
            conn.execute(f"DELETE FROM {table}")
        assert conn.execute("SELECT label FROM cleave_moved").fetchall() == [(alias,)]
    return rows


def assert_bad_input_refused(shop: Shop, env: dict | None = None) -> None:
    for args, message in [
        (["nosuch", "--to", f"{POSTGRES}/postgres"], "is not a context"),
        (["catalog", "--to", "sqlite:///elsewhere.sqlite3"], "must be a PostgreSQL or MySQL"),
        (["catalog", "--to", f"{POSTGRES}/cleave_no_such_database"], "cannot reach"),
        (["catalog", "--to", shop.where["payments"]], "is not empty"),
        (["catalog"], "--to is required"),
    ]:
        result = shop.live.manage("move_context", *args, "--noinput", check=False, env=env)
        assert result.returncode != 0, (args, result.stdout)
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr, result.stderr


def follows(shop: Shop, alias: str, env: dict | None = None) -> str:
    """The vendor a process started now, with the old environment, opens `alias` at."""
    code = f"from django.db import connections; print(connections['{alias}'].vendor)"
    return shop.live.manage("shell", "-c", code, env=env).stdout.strip().splitlines()[-1]


def move_both_while_selling(shop: Shop, targets: Targets, envs: dict[str, dict]) -> Traffic:
    """Payments to PostgreSQL, then orders to MariaDB, with two buyers all along; checked."""
    with Traffic(shop, patient=True) as traffic:
        time.sleep(3)
        before = payments_in(shop), orders_in(shop)
        move(shop, "payments", targets.postgres("payments"), env=envs.get("payments"))
        time.sleep(4)
        move(shop, "orders", targets.mariadb("orders"), env=envs.get("orders"))
        placed_before = len(traffic.orders)
        time.sleep(4)

    assert len(traffic.orders) > placed_before  # checkouts went on after the moves
    check_invariants(shop, traffic, settled(traffic))
    # the new locations took the writes
    assert payments_in(shop) > before[0] and orders_in(shop) > before[1]
    # a process started now, with the old environment, opens the new locations
    assert follows(shop, "payments", env=envs.get("payments")) == "postgresql"
    assert follows(shop, "orders", env=envs.get("orders")) == "mysql"
    # the old databases keep their rows, refuse writes, and say where they went
    assert frozen_rows(shop.live, "payments", "payments_payment") >= before[0]
    assert frozen_rows(shop.live, "orders", "orders_order") >= before[1]
    return traffic


def test_the_monolith_moves_payments_and_orders_while_it_sells(
    tmp_path, migrated_template, live_secrets
):
    with installation(tmp_path, "inprocess", migrated_template, live_secrets) as (
        live,
        targets,
    ):
        live.env.update({**FAST, "CLEAVE_EMBEDDED_SCHEDULER": "on"})
        live.manage("seed_demo")
        web = live.start_web(workers=2)
        shop = Shop(
            live,
            live.web_url,
            {"catalog": Urls([live.web_url]), "inventory": Urls([live.web_url])},
        )
        move_both_while_selling(shop, targets, {})
        # the running workers followed, and say how long the moves paused
        log = web.output()
        assert "Context payments follows its move" in log
        assert "Context orders follows its move" in log
        metrics = requests.get(f"{live.web_url}/metrics", timeout=10).text
        assert 'cleave_context_move_pause_seconds{context="payments"}' in metrics
        assert_bad_input_refused(shop)


def test_a_split_moves_payments_and_orders_while_it_sells(
    tmp_path, migrated_template, live_secrets
):
    with installation(tmp_path, "rabbitmq", migrated_template, live_secrets) as (
        live,
        targets,
    ):
        live.env.update(FAST)
        live.manage("seed_demo")
        split = SplitSystem(live)
        split.start()
        shop = Shop(live, split.url, split.groups)
        contexts = {name: ",".join(group.contexts) for name, group in split.groups.items()}
        envs = {
            "payments": {"CLEAVE_CONTEXTS": contexts["payments"]},
            "orders": {"CLEAVE_CONTEXTS": contexts["shop"]},
        }
        move_both_while_selling(shop, targets, envs)


def test_a_move_killed_at_any_step_leaves_one_location_and_runs_again(
    tmp_path, migrated_template, live_secrets
):
    """SIGKILL at several points of a move: never two locations; running it again finishes it."""
    with installation(tmp_path, "inprocess", migrated_template, live_secrets) as (
        live,
        targets,
    ):
        live.manage("seed_demo")
        rows = 20_000  # enough for the copy to take a while
        fill_outbox(live.data_dir / "payments.sqlite3", "payments", rows)
        shop = Shop(live, "", {})
        url = targets.postgres("payments")
        outcomes = []
        # killed as it starts, migrates, copies (frozen), and records
        for phase, delay in [
            ("Moving", 0.0),
            ("  migrated", 0.0),
            ("  froze", 0.3),
            ("  verified", 0.0),
        ]:
            process = subprocess.Popen(
                [PYTHON, "manage.py", "move_context", "payments", "--to", url, "--noinput"],
                cwd=ROOT,
                env=live.env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                start_new_session=True,
            )
            try:
                seen = []
                for line in process.stdout:
                    seen.append(line)
                    if line.startswith(phase):
                        break
                assert seen and seen[-1].startswith(phase), "".join(seen)
                time.sleep(delay)
            finally:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            recorded = live.sql("default", "SELECT count(*) FROM cleave_context_location")[0][0]
            frozen = live.sql(
                "payments", "SELECT count(*) FROM sqlite_master WHERE name = 'cleave_moved'"
            )[0][0]
            outcomes.append((phase, recorded, frozen))
            if recorded:
                assert frozen, outcomes  # moved: the old database refuses writes
                break
        # whatever the kill left, the move finishes when run again (or says it is done)
        if not outcomes[-1][1]:
            move(shop, "payments", url)
        shop.where["payments"] = url
        count = "SELECT count(*) FROM cleave_outboxevent"
        assert shop.sql("payments", count)[0][0] == live.sql("payments", count)[0][0] >= rows
        assert follows(shop, "payments") == "postgresql"
        states = live.sql("default", "SELECT state FROM cleave_context_move ORDER BY id")
        assert states[-1] == ("moved",), (outcomes, states)
        assert any(frozen for _, _, frozen in outcomes), outcomes  # a kill met the freeze

        # between servers, and back: PostgreSQL to MariaDB, then to a fresh PostgreSQL
        postgres = shop.where["payments"]
        move(shop, "payments", targets.mariadb("payments"))
        assert follows(shop, "payments") == "mysql"
        mariadb = shop.where["payments"]
        move(shop, "payments", targets.postgres("payments_back"))
        assert follows(shop, "payments") == "postgresql"
        for old in (postgres, mariadb):  # each old location refuses writes, rows kept
            frozen = Shop(live, "", {}, {"payments": old})
            assert frozen.sql("payments", count)[0][0] == shop.sql("payments", count)[0][0]
            with pytest.raises(Exception, match="cleave: context moved"):
                frozen.sql("payments", "DELETE FROM cleave_outboxevent")
