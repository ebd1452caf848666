"""
Checkout throughput and latency through the full checkout saga, against a
baseline that makes the same database writes in one plain transaction.

    .venv/bin/python bench/checkout.py                      # embedded SQLite, then PostgreSQL
    .venv/bin/python bench/checkout.py --backend sqlite --orders 300 --clients 1x1,2x4,4x1

Each backend runs on fresh databases: SQLite files in a temporary data
directory, or throw-away PostgreSQL databases for every context
(CLEAVE_BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432),
dropped afterwards. A seeding subprocess makes a shop of two products (every
order buys both: the hot items everyone wants) and one customer with a full
cart per order. Then, for each client level `PxT` (P worker processes of T
threads each, started together; `1x1` is one client, one order at a time;
`4x1` is what `make run` serves with: 4 gunicorn workers of one thread), and
for each kind of checkout, the workers check out `--orders` customers between
them, after warming up on customers of their own:

- saga: `order_checkout()` as the API calls it, which runs the whole
  checkout saga in-process (outbox, events and their handlers, the service
  client's in-process HTTP calls, the step log) to a confirmed order, then
  reads the order back as the API does;
- baseline: the same business writes in one transaction on every alias
  (nested atomics that commit together), without bus, saga or service
  client (see `baseline_checkout`);
- minimal baseline: only the final state of orders, inventory and payments,
  as a monolith writing just the outcome would (the baseline of earlier runs).

Every level runs `--repeat` rounds (default 3) of the three kinds, one kind
after the other, so that each round's saga / baseline ratio compares runs
made close together on a machine whose speed drifts; the reported ratio is
the median of the rounds' ratios, and each kind's throughput the median of
its rounds.

Throughput is orders / (last finish - first start) over all clients; p50 and
p99 are per order, over the orders of every round. Commits are counted by
wrapping the database connections: every `COMMIT` of a transaction block,
plus every write statement run in autocommit mode.

With more than one level, the report also compares each kind at its best
level: the most orders per second each design reached on this machine, which
is what the machine can serve of it, whatever the concurrency that takes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
CONTEXTS = ("users", "catalog", "inventory", "orders", "payments", "notifications", "analytics")
POSTGRES = os.environ.get("CLEAVE_BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


# --- the parent: one subprocess per backend ------------------------------------------------


def _clean_env(data_dir: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.endswith("DATABASE_URL") and not k.startswith("CLEAVE_")
    }
    env.update(
        CLEAVE_DATA_DIR=data_dir,
        CLEAVE_LOG_LEVEL="ERROR",
        CLEAVE_EMBEDDED_SCHEDULER="off",
        DJANGO_EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONPATH=str(ROOT),
    )
    return env


def _pg(statement: str) -> None:
    import psycopg

    parts = urlsplit(POSTGRES)
    with psycopg.connect(
        host=parts.hostname,
        port=parts.port or 5432,
        user=parts.username or "postgres",
        password=parts.password or "",
        dbname="postgres",
        autocommit=True,
    ) as conn:
        conn.execute(statement)


def _python(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, **kwargs
    )
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{done.stdout}\n{done.stderr}")
    return done


def run_backend(
    backend: str, orders: int, levels: list[tuple[int, int]], warm_up: int, repeat: int = 1
) -> dict:
    """
    Every kind of checkout at every client level, `repeat` rounds, on one
    backend's fresh databases. Within a round the kinds run one after the
    other, so each round's saga / baseline ratio compares runs made close
    together; the reported ratio is the median of the rounds' ratios.
    """
    with tempfile.TemporaryDirectory(prefix="cleave-bench-") as data_dir:
        env = _clean_env(data_dir)
        created: list[str] = []
        try:
            if backend == "postgres":
                prefix = f"cleave_bench_{uuid.uuid4().hex[:8]}"
                for alias in CONTEXTS:
                    name = f"{prefix}_{alias}"
                    _pg(f"CREATE DATABASE {name}")
                    created.append(name)
                    env[f"{alias.upper()}_DATABASE_URL"] = f"{POSTGRES.rstrip('/')}/{name}"
            _python(["manage.py", "migrate_all", "--noinput"], env)
            per_run = {level: orders + warm_up * level[0] * level[1] for level in levels}
            needed = sum(per_run.values()) * len(RUNS) * repeat
            seeded = _python([str(Path(__file__).resolve()), "--seed", str(needed)], env)
            customers = json.loads(seeded.stdout.strip().splitlines()[-1])
            result: dict = {"backend": BACKENDS[backend], "repeat": repeat, "levels": {}}
            for level in levels:
                rounds: dict[str, list[dict]] = {kind: [] for kind in RUNS}
                for _ in range(repeat):
                    for kind in RUNS:
                        batch = customers[: per_run[level]]
                        customers = customers[per_run[level] :]
                        rounds[kind].append(_run_clients(env, kind, batch, level, warm_up))
                result["levels"][f"{level[0]}x{level[1]}"] = _summary(rounds)
        finally:
            for name in created:
                _pg(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    return result


def _summary(rounds: dict[str, list[dict]]) -> dict:
    """Per kind: median throughput over the rounds, latencies over all orders; the ratios."""
    runs: dict = {}
    for kind, done in rounds.items():
        latencies = sorted(ms for run in done for ms in run["latencies_ms"])
        count = len(latencies)
        runs[kind] = {
            "orders": count,
            "rounds": [round(run["throughput"], 1) for run in done],
            "throughput": statistics.median(run["throughput"] for run in done),
            "p50_ms": statistics.median(latencies),
            "p99_ms": latencies[min(count - 1, round(0.99 * (count - 1)))],
            "commits_per_order": sum(run["commits"] for run in done) / count,
        }
    for name, versus in (("ratio", "baseline"), ("ratio_minimal", "minimal")):
        ratios = [
            saga["throughput"] / other["throughput"]
            for saga, other in zip(rounds["saga"], rounds[versus], strict=True)
        ]
        runs[name] = statistics.median(ratios)
        runs[name + "_rounds"] = [round(r, 3) for r in ratios]
    return runs


def _run_clients(
    env: dict[str, str], kind: str, customers: list[str], level: tuple[int, int], warm_up: int
) -> dict:
    """Start P worker processes of T threads, let them warm up, then time them together."""
    processes, threads = level
    workers = []
    try:
        for n in range(processes):
            worker = subprocess.Popen(
                [sys.executable, str(Path(__file__).resolve()), "--worker", kind],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            mine = customers[n::processes]
            worker.stdin.write(
                json.dumps({"customers": mine, "threads": threads, "warm_up": warm_up})
            )
            worker.stdin.write("\n")
            worker.stdin.flush()
            workers.append(worker)
        for worker in workers:  # every worker has warmed up and waits
            if worker.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a {kind} worker did not start")
        for worker in workers:
            worker.stdin.write("go\n")
            worker.stdin.flush()
        reports = []
        for worker in workers:
            out, _ = worker.communicate(timeout=1800)
            if worker.returncode != 0:
                raise RuntimeError(f"a {kind} worker failed with exit code {worker.returncode}")
            reports.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
    latencies = [ms for report in reports for ms in report["latencies_ms"]]
    elapsed = max(r["finished"] for r in reports) - min(r["started"] for r in reports)
    return {
        "latencies_ms": latencies,
        "throughput": len(latencies) / elapsed,
        "commits": sum(r["commits"] for r in reports),
    }


BACKENDS = {"sqlite": "embedded SQLite", "postgres": "PostgreSQL"}
RUNS = {
    "minimal": "minimal baseline",
    "baseline": "baseline",
    "saga": "saga",
}


def report(results: list[dict]) -> str:
    lines = [
        "| backend | clients | run | orders | orders/s (median) | rounds | p50 ms | p99 ms "
        "| commits/order |",
        "| --- | --- | --- | ---: | ---: | --- | ---: | ---: | ---: |",
    ]
    for result in results:
        for level, runs in result["levels"].items():
            for kind, label in RUNS.items():
                r = runs[kind]
                lines.append(
                    f"| {result['backend']} | {level} | {label} | {r['orders']} | "
                    f"{r['throughput']:.1f} | {', '.join(f'{t:.1f}' for t in r['rounds'])} | "
                    f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['commits_per_order']:.1f} |"
                )
    lines.append("")
    for result in results:
        for level, runs in result["levels"].items():
            lines.append(
                f"{result['backend']}, {level} clients: saga / baseline throughput = "
                f"{runs['ratio']:.2f}x (target >= 0.5x; rounds "
                f"{', '.join(f'{r:.2f}' for r in runs['ratio_rounds'])}); saga / minimal "
                f"baseline = {runs['ratio_minimal']:.2f}x; "
                f"{runs['saga']['commits_per_order']:.1f} commits per order through the saga, "
                f"{runs['baseline']['commits_per_order']:.1f} in the baseline."
            )
        if len(result["levels"]) > 1:
            lines.append(_peak_line(result))
    return "\n".join(lines)


def _peak_line(result: dict) -> str:
    """Each kind at its best level: the capacity of each design on this machine, compared."""
    best = {}
    for kind in ("saga", "baseline"):
        level, runs = max(result["levels"].items(), key=lambda item: item[1][kind]["throughput"])
        best[kind] = (runs[kind]["throughput"], level)
    (saga, saga_level), (baseline, baseline_level) = best["saga"], best["baseline"]
    return (
        f"{result['backend']}, each at its best level: saga {saga:.1f} orders/s "
        f"({saga_level}) / baseline {baseline:.1f} orders/s ({baseline_level}) = "
        f"{saga / baseline:.2f}x."
    )


def _level(text: str) -> tuple[int, int]:
    processes, _, threads = text.partition("x")
    try:
        level = int(processes), int(threads or 1)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not PxT, e.g. 2x4") from None
    if min(level) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: processes and threads are at least 1")
    return level


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--orders", type=int, default=200, help="orders per run (all clients)")
    parser.add_argument(
        "--clients",
        default="1x1,2x1,4x1,8x1",
        help="comma-separated client levels PxT: P processes of T threads "
        "(default 1x1,2x1,4x1,8x1)",
    )
    parser.add_argument("--warm-up", type=int, default=5, help="untimed orders per client")
    parser.add_argument(
        "--repeat", type=int, default=3, help="rounds of every kind at every level (default 3)"
    )
    parser.add_argument("--json", action="store_true", help="print the raw results as JSON")
    parser.add_argument("--seed", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=list(RUNS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.seed is not None:
        _setup_django()
        print(json.dumps([str(customer) for customer in _seed(args.seed)]))
        return []
    if args.worker:
        _work(args.worker)
        return []
    try:
        levels = [_level(text) for text in args.clients.split(",")]
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.orders < 1:
        parser.error("--orders must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    results = [run_backend(b, args.orders, levels, args.warm_up, args.repeat) for b in backends]
    print(json.dumps(results, indent=2) if args.json else report(results))
    return results


# --- the worker: seed, measure, count ------------------------------------------------------------


class CommitCounter:
    """Count commits on every connection: transaction blocks and autocommit writes."""

    def __init__(self) -> None:
        import threading

        self.count = 0
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def install(self) -> None:
        from django.db.backends.base.base import BaseDatabaseWrapper
        from django.db.backends.signals import connection_created

        counter = self
        original_commit = BaseDatabaseWrapper.commit

        def commit(self):
            counter.add()
            return original_commit(self)

        BaseDatabaseWrapper.commit = commit

        def wrap(execute, sql, params, many, context):
            connection = context["connection"]
            if not connection.in_atomic_block and connection.get_autocommit():
                verb = sql.lstrip().split(" ", 1)[0].upper()
                if verb in {"INSERT", "UPDATE", "DELETE", "REPLACE"}:
                    counter.add()
            return execute(sql, params, many, context)

        def on_connect(sender, connection, **kwargs):
            connection.execute_wrappers.append(wrap)

        connection_created.connect(on_connect, weak=False)
        from django.db import connections

        for connection in connections.all(initialized_only=True):
            connection.execute_wrappers.append(wrap)


def _seed(customers: int):
    from decimal import Decimal

    from contexts.analytics.models import Counter, ProductSales
    from contexts.catalog.models import Category, Product
    from contexts.inventory.models import StockItem
    from contexts.orders.models import Cart, CartItem
    from contexts.users.models import Customer

    category = Category.objects.create(slug="bench", name="Bench")
    products = [
        Product.objects.create(
            sku=f"BENCH-{n}", name=f"Bench item {n}", price=Decimal("9.90"), category=category
        )
        for n in range(2)
    ]
    for product in products:
        StockItem.objects.using("inventory").create(sku=product.sku, on_hand=1_000_000)
        # analytics rows exist after a shop's first sale; both runs update them
        ProductSales.objects.using("analytics").create(product_id=product.id, sku=product.sku)
    for name in (Counter.ORDERS_CONFIRMED, Counter.REVENUE):
        Counter.objects.using("analytics").create(name=name)
    people = Customer.objects.using("users").bulk_create(
        Customer(email=f"bench{n}@example.com", name=f"Bench {n}", password="!")
        for n in range(customers)
    )
    carts = Cart.objects.using("orders").bulk_create(Cart(customer_id=p.id) for p in people)
    CartItem.objects.using("orders").bulk_create(
        CartItem(
            cart=cart,
            product_id=product.id,
            sku=product.sku,
            name=product.name,
            unit_price=product.price,
            currency="EUR",
            quantity=1 + n,
        )
        for cart in carts
        for n, product in enumerate(products)
    )
    return [p.id for p in people]


def baseline_checkout(customer_id, *, full: bool = True) -> None:
    """
    The business writes of a confirmed checkout, as the saga's participants
    and handlers make them, in one transaction without bus, saga or service
    client: the order and its lines, the emptied cart; the reservation held,
    its lines and the stock held, then the stock taken and the reservation
    committed; the payment stored pending, then captured; the order confirmed;
    the order-confirmed notification (its send outcome recorded after the
    commit, as sending is); the analytics counters and product sales. The
    customer is checked (`active`) first, and the notification greets them
    by name, as in the saga.

    `full=False` is the minimal baseline: only the final state of orders,
    inventory and payments (reservation written committed, stock taken once,
    payment written captured), no customer check, notification or analytics.
    """
    from datetime import timedelta
    from decimal import Decimal

    from django.db import transaction
    from django.db.models import F
    from django.utils import timezone

    from contexts.analytics.models import Counter, ProductSales
    from contexts.inventory.models import Reservation, ReservationLine, StockItem
    from contexts.notifications.models import Notification, Recipient
    from contexts.orders.models import Cart, CartItem, Order, OrderLine
    from contexts.payments.models import Payment
    from contexts.users.models import Customer

    now = timezone.now()
    aliases = ["orders", "inventory", "payments"]
    if full:
        aliases += ["users", "notifications", "analytics"]
    with contextlib.ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(transaction.atomic(using=alias))
        if full:
            status = (
                Customer.objects.using("users").values_list("status", flat=True).get(pk=customer_id)
            )
            assert status == "active", status
        cart = Cart.objects.using("orders").select_for_update().get(customer_id=customer_id)
        items = list(cart.items.using("orders").all())
        total = sum((item.line_total for item in items), Decimal("0"))
        order = Order.objects.using("orders").create(
            customer_id=customer_id, total=total, currency="EUR", payment_method="tok_visa"
        )
        lines = OrderLine.objects.using("orders").bulk_create(
            OrderLine(
                order=order,
                product_id=item.product_id,
                sku=item.sku,
                name=item.name,
                unit_price=item.unit_price,
                quantity=item.quantity,
                line_total=item.line_total,
            )
            for item in items
        )
        CartItem.objects.using("orders").filter(cart=cart).delete()
        stock = StockItem.objects.using("inventory")
        reservation = Reservation.objects.using("inventory").create(
            order_id=order.id,
            status="held" if full else "committed",
            expires_at=now + timedelta(minutes=15),
        )
        ordered = sorted(items, key=lambda i: i.sku)
        if full:
            for item in ordered:
                held = stock.filter(sku=item.sku, on_hand__gte=F("reserved") + item.quantity)
                assert held.update(reserved=F("reserved") + item.quantity, updated_at=now)
        ReservationLine.objects.using("inventory").bulk_create(
            ReservationLine(reservation=reservation, sku=item.sku, quantity=item.quantity)
            for item in ordered
        )
        payment = Payment.objects.using("payments").create(
            order_id=order.id,
            customer_id=customer_id,
            amount=total,
            currency="EUR",
            method="tok_visa",
            status="pending" if full else "captured",
            provider_reference="" if full else f"fake_ch_{uuid.uuid4().hex}",
        )
        if full:
            Payment.objects.using("payments").filter(pk=payment.pk, status="pending").update(
                status="captured", provider_reference=f"fake_ch_{uuid.uuid4().hex}", updated_at=now
            )
        for item in ordered:
            if full:
                taken = stock.filter(sku=item.sku, reserved__gte=item.quantity).update(
                    on_hand=F("on_hand") - item.quantity,
                    reserved=F("reserved") - item.quantity,
                    updated_at=now,
                )
            else:
                taken = stock.filter(sku=item.sku, on_hand__gte=item.quantity).update(
                    on_hand=F("on_hand") - item.quantity
                )
            assert taken, "out of stock"
        if full:
            Reservation.objects.using("inventory").filter(pk=reservation.pk, status="held").update(
                status="committed", updated_at=now
            )
        Order.objects.using("orders").filter(pk=order.id).update(
            status="confirmed",
            payment_id=payment.id,
            reservation_id=reservation.id,
            confirmed_at=now,
            updated_at=now,
        )
        if not full:
            return
        recipient = Recipient.objects.using("notifications").filter(pk=customer_id).first()
        notification = Notification.objects.using("notifications").create(
            event_id=uuid.uuid4(),
            kind=Notification.Kind.ORDER_CONFIRMED,
            customer_id=customer_id,
            channel=Notification.Channel.EMAIL,
            subject=f"Your order {str(order.id)[:8]} is confirmed",
            body=f"Hello {recipient.name if recipient else ''}, "
            + ", ".join(line.sku for line in lines),
        )
        for counter, amount in ((Counter.ORDERS_CONFIRMED, 1), (Counter.REVENUE, total)):
            Counter.objects.using("analytics").filter(name=counter).update(
                value=F("value") + amount, updated_at=now
            )
        for line in lines:
            ProductSales.objects.using("analytics").filter(product_id=line.product_id).update(
                quantity=F("quantity") + line.quantity,
                revenue=F("revenue") + line.line_total,
                updated_at=now,
            )
    # sent after the commit, as the notifications context does: the bench's
    # customers have no address there, which is recorded
    if recipient is None:
        Notification.objects.using("notifications").filter(pk=notification.pk).update(
            error="no recipient"
        )


def minimal_baseline_checkout(customer_id) -> None:
    """The baseline without the customer check, the notification and analytics."""
    baseline_checkout(customer_id, full=False)


def saga_checkout(customer_id) -> None:
    from contexts.orders.commands import order_checkout

    order, _ = order_checkout(customer_id=customer_id, payment_method="tok_visa")
    order.refresh_from_db(using="orders")
    assert order.status == "confirmed", (order.status, order.cancellation_reason)


def _setup_django() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def _work(kind: str) -> None:
    """
    One client process: warm up, say `ready`, wait for `go`, check out its
    customers on T threads, print when it started and finished and each
    order's latency.
    """
    _setup_django()
    import threading

    from django.db import connections

    job = json.loads(sys.stdin.readline())
    fn = {
        "minimal": minimal_baseline_checkout,
        "baseline": baseline_checkout,
        "saga": saga_checkout,
    }[kind]
    threads = job["threads"]
    customers = [uuid.UUID(c) for c in job["customers"]]
    warm, timed = customers[: job["warm_up"] * threads], customers[job["warm_up"] * threads :]
    for customer_id in warm:
        fn(customer_id)
    counter = CommitCounter()
    counter.install()
    latencies: list[float] = []
    failures: list[BaseException] = []

    def client(share: list) -> None:
        try:
            for customer_id in share:
                started = time.perf_counter()
                fn(customer_id)
                latencies.append((time.perf_counter() - started) * 1000)
        except BaseException as exc:  # reported below: a failed order fails the run
            failures.append(exc)
        finally:
            connections.close_all()

    workers = [threading.Thread(target=client, args=(timed[n::threads],)) for n in range(threads)]
    print("ready", flush=True)
    sys.stdin.readline()
    started = time.time()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    finished = time.time()
    if failures:
        raise failures[0]
    print(
        json.dumps(
            {
                "started": started,
                "finished": finished,
                "latencies_ms": latencies,
                "commits": counter.count,
            }
        )
    )


if __name__ == "__main__":
    main()
