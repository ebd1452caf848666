"""
100 checkouts race for a product with 30 units, through the whole checkout saga,
with the inventory (and orders and payments) on PostgreSQL, then on MariaDB:
exactly 30 orders are confirmed, the other 70 are cancelled `out_of_stock`,
and the stock never goes negative.

Each run is a subprocess whose database URLs point at fresh databases created
for it (and dropped afterwards); the other aliases are SQLite files in a
temporary data directory. This file is also the subprocess's script: `race`
seeds the shop and fires the checkouts from worker threads through the
command layer, each thread with its own database connections, and prints what
it finds as JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHECKOUTS = 100
UNITS = 30
SERVER_ALIASES = ("inventory", "orders", "payments")

POSTGRES = os.environ.get("CLEAVE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
MARIADB = os.environ.get("CLEAVE_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306")


class Server:
    """Create and drop throw-away databases on one server."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        parts = urlsplit(self.url)
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.user, self.password = parts.username or "", parts.password or ""

    def _execute(self, statement: str) -> None:
        if self.scheme.startswith("postgres"):
            import psycopg

            with psycopg.connect(
                host=self.host,
                port=self.port,
                user=self.user,
                password=self.password,
                dbname="postgres",
                autocommit=True,
            ) as conn:
                conn.execute(statement)
        else:
            import pymysql

            conn = pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password
            )
            try:
                conn.cursor().execute(statement)
            finally:
                conn.close()

    def create(self, name: str) -> str:
        self._execute(f"CREATE DATABASE {name}")
        return f"{self.url}/{name}"

    def drop(self, name: str) -> None:
        force = " WITH (FORCE)" if self.scheme.startswith("postgres") else ""
        self._execute(f"DROP DATABASE IF EXISTS {name}{force}")


def race_on(server_url: str, tmp_path: Path, threads: int) -> dict:
    from cleave.testing import require_server

    server = Server(server_url)
    require_server(server.scheme, server.host, server.port)
    prefix = f"cleave_race_{uuid.uuid4().hex[:8]}"
    names = {alias: f"{prefix}_{alias}" for alias in SERVER_ALIASES}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith("CLEAVE_")
    }
    env.update(
        CLEAVE_DATA_DIR=str(tmp_path),
        CLEAVE_LOG_LEVEL="ERROR",
        CLEAVE_EMBEDDED_SCHEDULER="off",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    try:
        for alias, name in names.items():
            env[f"{alias.upper()}_DATABASE_URL"] = server.create(name)
        for args in (
            ["manage.py", "migrate_all", "--noinput"],
            [str(Path(__file__).resolve()), "race", str(CHECKOUTS), str(UNITS), str(threads)],
        ):
            done = subprocess.run(
                [sys.executable, *args],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
            assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        for name in names.values():
            server.drop(name)


def assert_no_oversell(result: dict) -> None:
    assert result["errors"] == [], result["errors"][:3]
    assert result["orders"] == {
        "confirmed": UNITS,
        "cancelled:out_of_stock": CHECKOUTS - UNITS,
    }, result
    assert (result["on_hand"], result["reserved"]) == (0, 0)
    assert result["lowest_on_hand_seen"] >= 0
    assert result["captured_payments"] == UNITS
    assert result["held_reservations"] == 0
    assert result["sagas"] == {"completed": UNITS, "compensated": CHECKOUTS - UNITS}


@pytest.mark.services
def test_100_concurrent_checkouts_for_30_units_on_postgresql(tmp_path):
    # three server connections per thread: stay well inside max_connections=100
    assert_no_oversell(race_on(POSTGRES, tmp_path, threads=25))


@pytest.mark.services
def test_100_concurrent_checkouts_for_30_units_on_mariadb(tmp_path):
    assert_no_oversell(race_on(MARIADB, tmp_path, threads=40))


# --- the subprocess's side ---------------------------------------------------------------------


def _race(checkouts: int, units: int, threads: int) -> dict:
    import threading
    from collections import Counter
    from concurrent.futures import ThreadPoolExecutor
    from decimal import Decimal

    from django.db import connections

    from cleave.sagas.models import SagaInstance
    from contexts.catalog.models import Category, Product
    from contexts.inventory.models import Reservation, StockItem
    from contexts.orders.commands import order_checkout
    from contexts.orders.models import Cart, CartItem, Order
    from contexts.payments.models import Payment
    from contexts.users.models import Customer

    category = Category.objects.create(slug="hot", name="Hot")
    product = Product.objects.create(
        sku="HOT-1", name="Limited edition", price=Decimal("30.00"), category=category
    )
    StockItem.objects.using("inventory").create(sku="HOT-1", on_hand=units)
    customers = Customer.objects.using("users").bulk_create(
        Customer(email=f"racer{n}@example.com", name=f"Racer {n}", password="!")
        for n in range(checkouts)
    )
    carts = Cart.objects.using("orders").bulk_create(Cart(customer_id=c.id) for c in customers)
    CartItem.objects.using("orders").bulk_create(
        CartItem(
            cart=cart,
            product_id=product.id,
            sku="HOT-1",
            name=product.name,
            unit_price=product.price,
            currency="EUR",
            quantity=1,
        )
        for cart in carts
    )
    connections.close_all()

    go = threading.Event()
    errors: list[str] = []
    lowest = [units]

    def checkout(customer: Customer) -> None:
        go.wait()
        try:
            order_checkout(customer_id=customer.id, payment_method="tok_visa")
            on_hand = StockItem.objects.using("inventory").get(sku="HOT-1").on_hand
            lowest[0] = min(lowest[0], on_hand)
        except Exception as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(checkout, customer) for customer in customers]
        go.set()
        for future in futures:
            future.result()

    orders = Counter(
        status if reason is None else f"{status}:{reason}"
        for status, reason in Order.objects.using("orders").values_list(
            "status", "cancellation_reason"
        )
    )
    stock = StockItem.objects.using("inventory").get(sku="HOT-1")
    return {
        "errors": errors,
        "orders": dict(orders),
        "on_hand": stock.on_hand,
        "reserved": stock.reserved,
        "lowest_on_hand_seen": lowest[0],
        "captured_payments": Payment.objects.using("payments").filter(status="captured").count(),
        "held_reservations": Reservation.objects.using("inventory").filter(status="held").count(),
        "sagas": dict(
            Counter(SagaInstance.objects.using("orders").values_list("state", flat=True))
        ),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    command, *arguments = sys.argv[1:]
    if command != "race":
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(_race(*(int(a) for a in arguments))))
