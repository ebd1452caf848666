"""
The same checkout saga definition, driven by a real Celery worker.

With CLEAVE_SAGA_RUNNER=celery the process that checks out only queues the
task `cleave.sagas.run` on the orders queue (RabbitMQ); a worker consuming
that queue drives the saga to a confirmed order. Everything runs as real
processes on SQLite files in a temporary data directory, with queue names
under a unique prefix so the test shares the broker with nobody.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BROKER = os.environ.get("CLEAVE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//")
CONTEXTS = ("users", "catalog", "inventory", "orders", "payments", "notifications", "analytics")

pytestmark = [pytest.mark.services]


def _env(data_dir: Path, prefix: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith(("CLEAVE_", "CELERY_"))
    }
    env.update(
        CLEAVE_DATA_DIR=str(data_dir),
        CLEAVE_SAGA_RUNNER="celery",
        CLEAVE_EVENT_TRANSPORT="inprocess",
        CLEAVE_EVENT_QUEUE_PREFIX=prefix,
        CELERY_BROKER_URL=BROKER,
        CLEAVE_LOG_LEVEL="WARNING",
        CLEAVE_LOG_FORMAT="plain",
        CLEAVE_EMBEDDED_SCHEDULER="off",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


def _delete_queues(prefix: str) -> None:
    from kombu import Connection

    with Connection(BROKER) as conn:
        channel = conn.channel()
        for name in [f"{prefix}celery", *(f"{prefix}{c}" for c in CONTEXTS)]:
            for queue in (name, f"{name}.dead"):
                try:
                    channel.queue_delete(queue)
                except Exception:
                    channel = conn.channel()  # a missing queue closes the channel
        for exchange in (
            f"{prefix}cleave.events",
            f"{prefix}cleave.dead",
            f"{prefix}cleave.direct",
        ):
            try:
                channel.exchange_delete(exchange)
            except Exception:
                channel = conn.channel()


def _order(data_dir: Path, order_id: str) -> tuple[str, str | None]:
    with sqlite3.connect(data_dir / "orders.sqlite3") as db:
        return db.execute(
            "SELECT status, cancellation_reason FROM orders_order WHERE id = ?",
            (order_id.replace("-", ""),),
        ).fetchone()


def test_a_celery_worker_drives_the_checkout_saga_to_a_confirmed_order(tmp_path):
    from cleave.testing import require_server

    require_server("RabbitMQ", "127.0.0.1", 5672)
    prefix = f"sagatest{uuid.uuid4().hex[:6]}."
    env = _env(tmp_path, prefix)

    def manage(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        return done

    worker = None
    try:
        manage("manage.py", "migrate_all", "--noinput")
        started = json.loads(
            manage(str(Path(__file__).resolve()), "checkout").stdout.splitlines()[-1]
        )
        # the checkout process only queued the saga: nothing ran it yet
        assert started["status"] == "pending"
        assert _order(tmp_path, started["order_id"]) == ("pending", None)

        worker = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "worker",
                "-Q",
                f"{prefix}orders",
                "--pool",
                "solo",
                "-n",
                f"{prefix}worker@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "-l",
                "WARNING",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + 60
        while _order(tmp_path, started["order_id"])[0] == "pending":
            assert worker.poll() is None, worker.stdout.read()[-3000:]
            assert time.monotonic() < deadline, "the worker did not finish the saga"
            time.sleep(0.3)

        assert _order(tmp_path, started["order_id"]) == ("confirmed", None)
        with sqlite3.connect(tmp_path / "orders.sqlite3") as db:
            (state,) = db.execute(
                "SELECT state FROM cleave_sagainstance WHERE id = ?",
                (started["saga_id"].replace("-", ""),),
            ).fetchone()
        assert state == "completed"
        with sqlite3.connect(tmp_path / "payments.sqlite3") as db:
            assert db.execute("SELECT status FROM payments_payment").fetchall() == [("captured",)]
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                worker.kill()
        _delete_queues(prefix)


def _checkout() -> dict:
    from decimal import Decimal

    from contexts.catalog.models import Category, Product
    from contexts.inventory.commands import stock_set
    from contexts.orders.commands import cart_add_item, order_checkout
    from contexts.users.commands import customer_register

    category = Category.objects.create(slug="celery", name="Celery")
    product = Product.objects.create(
        sku="CEL-1", name="Stalk", price=Decimal("1.20"), category=category
    )
    stock_set(sku="CEL-1", on_hand=10)
    customer = customer_register(email="cel@example.com", password="correct horse", name="Cel")
    cart_add_item(customer_id=customer.id, product_id=product.id, quantity=3)
    order, _ = order_checkout(customer_id=customer.id, payment_method="tok_visa")
    order.refresh_from_db(using="orders")
    return {"order_id": str(order.id), "saga_id": str(order.saga_id), "status": order.status}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    if sys.argv[1:] != ["checkout"]:
        raise SystemExit("usage: test_saga_celery.py checkout")
    print(json.dumps(_checkout()))
