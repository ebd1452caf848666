"""
Fault injection: the checkout saga's process is killed (a real SIGKILL: no
`finally`, no `atexit`, no lease released) at every step boundary, then
`manage.py sagas resume` finishes the job and the system is consistent.

The checkouts run in subprocesses against SQLite files in a temporary
CLEAVE_DATA_DIR (the test process's in-memory databases are invisible to
them). This file is also the subprocesses' script: `setup` seeds a shop with
one customer per scenario, `checkout` runs one customer's checkout with a hook
that kills the process at the chosen boundary. The hook is installed here, by
wrapping the engine's call seam (`calls.invoke`); production code reads no
crash setting. The invariants are then read straight from the files.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS_ON_HAND = 100
QUANTITY = 2
LEASE_SECONDS = 1

# (where the process dies, the payment token, how the order must end)
SCENARIOS = [
    ("validate_user:before_action", "tok_visa", ("confirmed", None)),
    ("validate_user:after_action", "tok_visa", ("confirmed", None)),
    ("reserve_inventory:before_action", "tok_visa", ("confirmed", None)),
    ("reserve_inventory:after_action", "tok_visa", ("confirmed", None)),
    ("process_payment:before_action", "tok_visa", ("confirmed", None)),
    ("process_payment:after_action", "tok_visa", ("confirmed", None)),
    ("confirm_order:before_action", "tok_visa", ("confirmed", None)),
    ("confirm_order:after_action", "tok_visa", ("confirmed", None)),
    (
        "reserve_inventory:before_compensation",
        "tok_chargeDeclined",
        ("cancelled", "payment_declined"),
    ),
    (
        "reserve_inventory:after_compensation",
        "tok_chargeDeclined",
        ("cancelled", "payment_declined"),
    ),
    ("place_order:before_compensation", "tok_chargeDeclined", ("cancelled", "payment_declined")),
    ("place_order:after_compensation", "tok_chargeDeclined", ("cancelled", "payment_declined")),
    ("process_payment:before_compensation", "tok_timeout", ("cancelled", "timeout")),
    ("process_payment:after_compensation", "tok_timeout", ("cancelled", "timeout")),
    ("process_payment:before_query", "tok_timeout", ("cancelled", "timeout")),
]


def subprocess_env(data_dir: Path) -> dict[str, str]:
    """The test's environment on SQLite files in `data_dir`: no server URLs leak in."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith("CLEAVE_")
    }
    env.update(
        CLEAVE_DATA_DIR=str(data_dir),
        CLEAVE_SAGA_LEASE_SECONDS=str(LEASE_SECONDS),
        CLEAVE_SAGA_RETRY_BASE="0",
        CLEAVE_LOG_LEVEL="WARNING",
        CLEAVE_LOG_FORMAT="plain",
        CLEAVE_EMBEDDED_SCHEDULER="off",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


def run(args: list[str], data_dir: Path, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=subprocess_env(data_dir),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def script(*args: str) -> list[str]:
    return [str(Path(__file__).resolve()), *args]


@pytest.fixture(scope="module")
def crashed_shop(tmp_path_factory) -> tuple[Path, dict]:
    """A shop on SQLite files where every scenario's checkout was killed mid-saga."""
    data_dir = tmp_path_factory.mktemp("saga-faults")
    for step in (["manage.py", "migrate_all", "--noinput"], script("setup", str(len(SCENARIOS)))):
        done = run(step, data_dir)
        assert done.returncode == 0, done.stdout + done.stderr
    customers = json.loads((data_dir / "customers.json").read_text())

    def crash(index: int) -> subprocess.CompletedProcess:
        crash_at, token, _ = SCENARIOS[index]
        return run(script("checkout", customers[index], token, crash_at), data_dir)

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(crash, range(len(SCENARIOS))))
    return data_dir, {"customers": customers, "crashes": results}


def rows(data_dir: Path, alias: str, sql: str, *params) -> list[tuple]:
    with sqlite3.connect(data_dir / f"{alias}.sqlite3") as db:
        return db.execute(sql, params).fetchall()


def test_every_checkout_process_really_died_by_sigkill_mid_saga(crashed_shop):
    data_dir, shop = crashed_shop
    for (crash_at, _, _), result in zip(SCENARIOS, shop["crashes"], strict=True):
        assert result.returncode == -signal.SIGKILL, (crash_at, result.stdout, result.stderr)
    unfinished = rows(
        data_dir,
        "orders",
        "SELECT count(*) FROM cleave_sagainstance WHERE state IN (?, ?)",
        "running",
        "compensating",
    )
    assert unfinished == [(len(SCENARIOS),)]


def test_after_sagas_resume_the_system_is_consistent(crashed_shop):
    data_dir, shop = crashed_shop
    time.sleep(LEASE_SECONDS + 0.2)  # the dead processes' leases expire

    resumed = run(["manage.py", "sagas", "resume"], data_dir)

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resumed {len(SCENARIOS)} saga(s)" in resumed.stdout

    # every order is final, and ended as its scenario says
    orders = dict(
        (customer, (status, reason))
        for customer, status, reason in rows(
            data_dir, "orders", "SELECT customer_id, status, cancellation_reason FROM orders_order"
        )
    )
    for index, (crash_at, _, expected) in enumerate(SCENARIOS):
        customer = shop["customers"][index].replace("-", "")
        assert orders[customer] == expected, crash_at
    assert rows(
        data_dir,
        "orders",
        "SELECT count(*) FROM cleave_sagainstance WHERE state NOT IN (?, ?)",
        "completed",
        "compensated",
    ) == [(0,)]

    # stock reserved equals stock held by pending orders (there are none left) ...
    pending = rows(data_dir, "orders", "SELECT count(*) FROM orders_order WHERE status = 'pending'")
    [(on_hand, reserved)] = rows(
        data_dir, "inventory", "SELECT on_hand, reserved FROM inventory_stockitem"
    )
    held = rows(
        data_dir,
        "inventory",
        "SELECT coalesce(sum(l.quantity), 0) FROM inventory_reservationline l "
        "JOIN inventory_reservation r ON r.id = l.reservation_id WHERE r.status = 'held'",
    )
    assert pending == [(0,)]
    assert reserved == held[0][0] == 0
    # ... and what left the shelf is exactly what confirmed orders bought, once each
    confirmed = [c for c, (status, _) in orders.items() if status == "confirmed"]
    assert on_hand == UNITS_ON_HAND - QUANTITY * len(confirmed)
    committed = rows(
        data_dir,
        "inventory",
        "SELECT order_id FROM inventory_reservation WHERE status = 'committed'",
    )
    assert sorted(order for (order,) in committed) == sorted(
        order
        for (order,) in rows(
            data_dir, "orders", "SELECT id FROM orders_order WHERE status = 'confirmed'"
        )
    )

    # every captured payment belongs to a confirmed order (or was refunded); one charge each
    payments = rows(data_dir, "payments", "SELECT order_id, status FROM payments_payment")
    confirmed_orders = {
        order
        for (order,) in rows(
            data_dir, "orders", "SELECT id FROM orders_order WHERE status = 'confirmed'"
        )
    }
    captured = [order for order, status in payments if status == "captured"]
    assert set(captured) == confirmed_orders
    assert len(captured) == len(set(captured))  # never charged twice
    assert not [order for order, status in payments if status == "pending"]


# --- the subprocesses' side ------------------------------------------------------------------


def _setup(count: int) -> None:
    """Migrated databases get a product, stock and `count` customers with it in their cart."""
    from decimal import Decimal

    from contexts.catalog.models import Category, Product
    from contexts.inventory.commands import stock_set
    from contexts.orders.commands import cart_add_item
    from contexts.users.commands import customer_register

    category = Category.objects.create(slug="tools", name="Tools")
    product = Product.objects.create(
        sku="CRASH-1", name="Crash test dummy", price=Decimal("12.50"), category=category
    )
    stock_set(sku="CRASH-1", on_hand=UNITS_ON_HAND)
    customers = []
    for n in range(count):
        customer = customer_register(
            email=f"crash{n}@example.com", password="correct horse", name=f"Crash {n}"
        )
        cart_add_item(customer_id=customer.id, product_id=product.id, quantity=QUANTITY)
        customers.append(str(customer.id))
    data_dir = Path(os.environ["CLEAVE_DATA_DIR"])
    (data_dir / "customers.json").write_text(json.dumps(customers))


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install_crash(crash_at: str) -> None:
    """Kill this process when the saga reaches `step:before_<kind>` or `step:after_<kind>`."""
    from cleave.sagas import calls

    step_name, point = crash_at.split(":")
    original = calls.invoke

    def invoke(fn, instance, step, kind, attempt):
        if step.name == step_name and point == f"before_{kind}":
            _die()
        result = original(fn, instance, step, kind, attempt)
        if step.name == step_name and point == f"after_{kind}":
            _die()  # the participant committed; the saga has not recorded it
        return result

    calls.invoke = invoke


def _checkout(customer_id: str, token: str, crash_at: str) -> None:
    from uuid import UUID

    from contexts.orders.commands import order_checkout

    _install_crash(crash_at)
    order_checkout(customer_id=UUID(customer_id), payment_method=token)
    print(f"the saga never reached {crash_at}")
    sys.exit(3)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    command, *arguments = sys.argv[1:]
    if command == "setup":
        _setup(int(arguments[0]))
    elif command == "checkout":
        _checkout(*arguments)
    else:
        raise SystemExit(f"unknown command {command!r}")
