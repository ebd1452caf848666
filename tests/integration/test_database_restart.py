"""
PostgreSQL restarted under traffic: a split (bench/split.py's three groups,
events over RabbitMQ, every alias on PostgreSQL but orders on MariaDB) under
bench/soak.py's mixed load, while PostgreSQL stops for 5 s and starts again.

What must hold: a request that meets the outage is answered 503 with
`Retry-After` (never a 500, never a dropped connection); checkouts placed
before or after it end by themselves (sagas and handlers wait, nothing is
left pending); the backlog drains; and once PostgreSQL is back every
request succeeds again (the pools reconnect).

Restarts the machine's PostgreSQL (as root, with `pg_ctlcluster`, as
`.ci/run` starts it); CI's first pass only.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cleave.testing import require_server, services_required
from tests.support.live import wait_until

pytestmark = pytest.mark.services

ROOT = Path(__file__).resolve().parents[2]


def _soak():
    spec = importlib.util.spec_from_file_location("soak", ROOT / "bench" / "soak.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak", module)
    spec.loader.exec_module(module)
    return module


def _cluster() -> list[str]:
    """`pg_ctlcluster` for the machine's one cluster, or a skip (a failure in CI) saying why."""
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    why = None
    if os.geteuid() != 0:
        why = "restarting PostgreSQL needs root"
    elif shutil.which("pg_ctlcluster") is None or not versions:
        why = "no PostgreSQL cluster to restart with pg_ctlcluster"
    if why:
        if services_required():
            pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {why}")
        pytest.skip(why)
    return ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main"]


def _postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0


def test_postgresql_restarted_under_traffic_answers_503_and_loses_nothing():
    for name, port in (("PostgreSQL", 5432), ("MariaDB", 3306), ("RabbitMQ", 5672)):
        require_server(name, "127.0.0.1", port)
    cluster = _cluster()
    soak = _soak()
    databases = soak.Databases()
    databases.create()
    try:
        env = {**databases.env(), "CLEAVE_LOG_LEVEL": "WARNING"}
        with soak.split_bench.split(extra_env=env) as deployment:
            load = soak.Load(deployment.base_url, clients=2, checkouts_per_second=1.0, seed=3)
            load.start()
            try:
                time.sleep(10)
                placed_before = len(load.orders)
                subprocess.run([*cluster, "stop", "-m", "fast"], check=True, timeout=60)
                try:
                    time.sleep(5)
                finally:
                    subprocess.run([*cluster, "start"], check=True, timeout=60)
                wait_until(_postgres_up, timeout=60, what="PostgreSQL to be back")
                time.sleep(10)  # the pools find their connections broken and reconnect
                recovered = time.time()
                time.sleep(10)
                after = load.window(recovered)
            finally:
                load.finish()
            wait_until(
                lambda: not any(soak.backlog(databases).values()),
                timeout=120,
                every=1,
                what="the backlog to drain",
            )
    finally:
        if not _postgres_up():
            subprocess.run([*cluster, "start"], check=False, timeout=60)
        databases.drop()

    # the outage was met, and only ever as 503 with Retry-After
    assert load.unexpected, "no request met the outage"
    assert set(load.unexpected) == {("503", True)}, (load.unexpected, load.errors[:10])
    # nothing stranded: every checkout placed ended by itself
    stranded = [order for order, status in load.orders.items() if status == "pending"]
    assert not stranded, stranded
    assert placed_before >= 3 and len(load.orders) > placed_before
    # the pools reconnected: after the restart, everything answered as expected
    assert after["requests"] >= 20 and after["failed"] == 0, after
