"""
A rush on the databases' connection limits (issue 13): 60 customers check out
at once for a product with 20 units, through a real `gunicorn --workers 3
--threads 8`, with every alias on one PostgreSQL server except the orders,
which are on MariaDB. Exactly 20 orders are confirmed, the other 40 cancelled
`out_of_stock`, none is left pending, and no request of the run is answered
5xx; five rounds in a row, each for a fresh product.

Each thread of each worker used to keep a connection per alias, which went
past PostgreSQL's 100 connections; the pools (`DB_POOL_*`, see
docs/configuration.md) bound them, on PostgreSQL and on MariaDB, and the run
checks the number of connections it saw on each server's databases against
that bound.

The databases are created for the run and dropped afterwards; the data
directory (secrets, logs) is a temporary one. The checkout saga runs in the
web processes (the embedded default), and their scheduler is left on so that
recovery works as in production.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from cleave.core.conf import POOL_DEFAULTS
from cleave.testing import require_server
from tests.integration.test_saga_concurrency import MARIADB, POSTGRES, Server
from tests.support.live import GUNICORN, PYTHON, ROOT, Process, free_port, wait_until

WORKERS = 3
THREADS = 8
CUSTOMERS = 60
UNITS = 20
ROUNDS = 5
EXPECTED = {"confirmed": UNITS, "cancelled:out_of_stock": CUSTOMERS - UNITS}
SETTLE_SECONDS = 120  # how long a round's orders may stay pending
POSTGRES_ALIASES = (
    "default",
    "users",
    "catalog",
    "inventory",
    "payments",
    "notifications",
    "analytics",
)
MARIADB_ALIASES = ("orders",)

SEED = """
import json
from contexts.catalog.commands import category_create, product_create
from contexts.inventory.commands import stock_set

category_create(slug="rush", name="Rush")
ids = []
for n in range({rounds}):
    sku = f"RUSH-{{n}}"
    product = product_create(sku=sku, name=f"Limited edition {{n}}", price="30.00",
                             category_slug="rush")
    stock_set(sku=sku, on_hand={units})
    ids.append([str(product.id), sku])
print(json.dumps(ids))
"""


def url_variable(alias: str) -> str:
    return "DATABASE_URL" if alias == "default" else f"{alias.upper()}_DATABASE_URL"


def pool_variable(name: str) -> bool:
    """DB_POOL_MAX, ORDERS_DB_POOL_MAX, ...: the run measures the defaults."""
    return name.startswith("DB_POOL_") or "_DB_POOL_" in name


class Shop:
    """The gunicorn under test, seen over HTTP; every answer's status is counted."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []  # 5xx answers and requests that got no answer
        self._lock = threading.Lock()
        self._local = threading.local()

    def call(self, method: str, path: str, token: str = "", **kwargs: Any) -> requests.Response:
        # a session per thread: requests' sessions are not thread-safe
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = session.request(
                method, self.base_url + path, headers=headers, timeout=90, **kwargs
            )
        except requests.RequestException as exc:
            with self._lock:
                self.failures.append(f"{method} {path}: no answer ({exc})")
            raise
        with self._lock:
            self.statuses[response.status_code] += 1
            if response.status_code >= 500:
                self.failures.append(
                    f"{method} {path}: {response.status_code} {response.text[:300]}"
                )
        return response

    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)


class ConnectionWatch:
    """Count the connections to the run's databases on one server every 50 ms, from a thread."""

    def __init__(self, server: Server, names: list[str]) -> None:
        self._postgres = server.scheme.startswith("postgres")
        if self._postgres:
            import psycopg

            self._conn = psycopg.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                password=server.password,
                dbname="postgres",
                autocommit=True,
            )
        else:
            import pymysql

            self._conn = pymysql.connect(
                host=server.host,
                port=server.port,
                user=server.user,
                password=server.password,
                autocommit=True,
            )
        self._names = names
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rush-watch", daemon=True)

    def _count(self) -> int:
        if self._postgres:
            return self._conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = ANY(%s)", [self._names]
            ).fetchone()[0]
        with self._conn.cursor() as cursor:
            marks = ", ".join(["%s"] * len(self._names))
            cursor.execute(
                f"SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB IN ({marks})",
                self._names,
            )
            return cursor.fetchone()[0]

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, self._count())

    def __enter__(self) -> ConnectionWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


@pytest.mark.services
def test_60_checkouts_at_once_for_20_units_stay_within_the_connection_limits(tmp_path):
    postgres, mariadb = Server(POSTGRES), Server(MARIADB)
    require_server("PostgreSQL", postgres.host, postgres.port)
    require_server("MariaDB", mariadb.host, mariadb.port)
    started = time.monotonic()
    prefix = f"cleave_rush_{uuid.uuid4().hex[:8]}"
    created: list[tuple[Server, str]] = []
    web: Process | None = None
    env = _environment(tmp_path)
    try:
        for aliases, server in ((POSTGRES_ALIASES, postgres), (MARIADB_ALIASES, mariadb)):
            for alias in aliases:
                name = f"{prefix}_{alias}"
                env[url_variable(alias)] = server.create(name)
                created.append((server, name))
        _manage(env, "migrate_all", "--noinput")
        products = json.loads(
            _manage(env, "shell", "-c", SEED.format(rounds=ROUNDS, units=UNITS)).splitlines()[-1]
        )
        web, shop = _start_gunicorn(env, tmp_path / "web.log")
        postgres_names = [f"{prefix}_{alias}" for alias in POSTGRES_ALIASES]
        mariadb_names = [f"{prefix}_{alias}" for alias in MARIADB_ALIASES]
        with (
            ConnectionWatch(postgres, postgres_names) as watch,
            ConnectionWatch(mariadb, mariadb_names) as mariadb_watch,
        ):
            tokens = _register_customers(shop)
            results = []
            for product_id, sku in products if len(tokens) == CUSTOMERS else []:
                results.append(_round(shop, tokens, product_id, sku))
                if results[-1]["orders"] != EXPECTED:
                    break  # "five times in a row" has failed already
        elapsed = time.monotonic() - started
        report = {
            "customers": len(tokens),
            "rounds": results,
            "statuses": dict(sorted(shop.statuses.items())),
            "server_errors": shop.server_errors(),
            "postgres_connections_peak": watch.peak,
            "mariadb_connections_peak": mariadb_watch.peak,
            "seconds": round(elapsed, 1),
        }
        print(json.dumps(report))
        (tmp_path / "report.json").write_text(json.dumps(report, indent=2))

        assert shop.failures == [], f"{len(shop.failures)} failures: {shop.failures[:5]}"
        assert len(results) == ROUNDS, report
        for result in results:
            assert result["orders"] == EXPECTED, report
            assert (result["stock"]["on_hand"], result["stock"]["reserved"]) == (0, 0), report
        # every web worker holds at most one pool's worth per alias, on either server
        bound = WORKERS * len(POSTGRES_ALIASES) * POOL_DEFAULTS["postgresql"].max
        assert watch.peak <= bound, report
        bound = WORKERS * len(MARIADB_ALIASES) * POOL_DEFAULTS["mysql"].max
        assert mariadb_watch.peak <= bound, report
    finally:
        if web is not None:
            web.stop()
        for server, name in created:
            server.drop(name)


def _environment(tmp_path: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL")
        and not key.startswith(("CLEAVE_", "PYTEST"))
        and not pool_variable(key)
    }
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        CLEAVE_DATA_DIR=str(data_dir),
        # the web processes recover sagas, sweep the outbox, expire reservations
        CLEAVE_EMBEDDED_SCHEDULER="on",
        CLEAVE_TRACING="off",
        CLEAVE_LOG_LEVEL="WARNING",
        CLEAVE_LOG_FORMAT="plain",
        CLEAVE_THROTTLE_ANON="100000/minute",
        CLEAVE_THROTTLE_USER="100000/minute",
        # fixed before any process starts, so no two workers race to generate them
        DJANGO_SECRET_KEY=secrets.token_urlsafe(40),
        CLEAVE_JWT_SECRET=secrets.token_urlsafe(40),
        CLEAVE_SERVICE_JWT_SECRET=secrets.token_urlsafe(40),
    )
    return env


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"manage.py {args[0]}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
    return done.stdout


def _start_gunicorn(env: dict[str, str], log: Path) -> tuple[Process, Shop]:
    port = free_port()
    args = [GUNICORN, "config.wsgi", "--bind", f"127.0.0.1:{port}"]
    args += ["--workers", str(WORKERS), "--threads", str(THREADS), "--timeout", "60"]
    web = Process("web", args, env, log)
    shop = Shop(f"http://127.0.0.1:{port}")

    def healthy() -> bool:
        if not web.alive():
            raise AssertionError(f"gunicorn exited:\n{web.output()[-4000:]}")
        try:
            return requests.get(f"{shop.base_url}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=60, what="gunicorn")
    except BaseException:
        web.stop()
        raise
    return web, shop


def _register_customers(shop: Shop) -> list[str]:
    """Register the customers through the public API; return their access tokens."""
    run = uuid.uuid4().hex[:8]

    def register(n: int) -> str | None:
        email = f"rush-{run}-{n}@example.com"
        # unlike the email: the password validators refuse one too similar to it
        password = secrets.token_urlsafe(12)
        body = {"email": email, "password": password, "name": f"Rusher {n}"}
        if shop.call("POST", "/api/users/", json=body).status_code != 201:
            return None
        answer = shop.call("POST", "/api/users/token", json={"email": email, "password": password})
        return answer.json()["access"] if answer.status_code == 200 else None

    with ThreadPoolExecutor(max_workers=WORKERS * THREADS) as pool:
        return [token for token in pool.map(register, range(CUSTOMERS)) if token]


def _round(shop: Shop, tokens: list[str], product_id: str, sku: str) -> dict[str, Any]:
    """Every customer puts one unit in the cart, then all check out at once."""
    round_started = time.monotonic()

    def fill(token: str) -> bool:
        item = {"product_id": product_id, "quantity": 1}
        return shop.call("POST", "/api/orders/cart/items", token, json=item).status_code == 201

    with ThreadPoolExecutor(max_workers=WORKERS * THREADS) as pool:
        ready = [
            token for token, filled in zip(tokens, pool.map(fill, tokens), strict=True) if filled
        ]
    go = threading.Barrier(len(ready))

    def checkout(token: str) -> tuple[str, str | None]:
        go.wait()  # all at once
        answer = shop.call(
            "POST", "/api/orders/checkout", token, json={"payment_method": "tok_visa"}
        )
        return token, answer.json()["order_id"] if answer.status_code == 202 else None

    with ThreadPoolExecutor(max_workers=len(ready)) as pool:
        answers = list(pool.map(checkout, ready))
    orders = {order_id: token for token, order_id in answers if order_id is not None}
    checked_out = time.monotonic() - round_started

    final: dict[str, dict[str, Any]] = {}

    def settled() -> bool:
        for order_id, token in orders.items():
            if order_id not in final:
                answer = shop.call("GET", f"/api/orders/{order_id}", token)
                if answer.status_code == 200 and answer.json()["status"] != "pending":
                    final[order_id] = answer.json()
        return len(final) == len(orders)

    with contextlib.suppress(AssertionError):  # what is still pending is counted below
        wait_until(settled, timeout=SETTLE_SECONDS, every=0.5, what="every order to be final")
    outcomes = Counter(
        body["status"]
        if body["cancellation_reason"] is None
        else f"{body['status']}:{body['cancellation_reason']}"
        for body in final.values()
    )
    outcomes["pending"] = len(orders) - len(final)
    outcomes["not in cart"] = len(tokens) - len(ready)
    outcomes["checkout refused"] = len(ready) - len(orders)
    stock = shop.call("GET", f"/api/inventory/stock/{sku}").json()
    return {
        "sku": sku,
        "orders": {outcome: count for outcome, count in outcomes.items() if count},
        "stock": {key: stock.get(key) for key in ("on_hand", "reserved")},
        "checkout_seconds": round(checked_out, 1),
        "seconds": round(time.monotonic() - round_started, 1),
    }
