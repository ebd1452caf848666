"""
A soak: the split under a steady mixed load for a long time, to see whether
anything creeps (memory, file descriptors, database connections, backlogs,
latency).

    .venv/bin/python bench/soak.py                         # 30 minutes, a sample every minute
    .venv/bin/python bench/soak.py --minutes 2 --interval 15 --json soak.json --png ""

What runs (bench/split.py's `split()`): `manage.py run_split` with three
groups (users,catalog; orders,payments,notifications,analytics; inventory),
each a gunicorn web server and a Celery worker, the admin console and the
nginx gateway, events over RabbitMQ, and every alias on a server: fresh
PostgreSQL databases for `default` and six contexts and a MariaDB database
for orders (`--databases sqlite` keeps the split's SQLite files), created
for the run and dropped after it.

The load, through the gateway, from `--clients` threads, each a customer of
its own: list the products and read one, put one in the cart, and about
every other turn check out (POST, then read the order until it is final),
with a declined card one time in four; every twentieth turn the customer
renames itself (`PATCH /api/users/me`); every five minutes it refreshes its
token, as a client does before the access token expires. Checkouts between all clients are
paced to `--checkouts` per second (the demo's stock lasts 30 minutes at
0.5). Every request is timed; any answer other than the expected status is
an error, and so is an order still pending 60 s after its checkout.

Every `--interval` seconds a sample: the RSS and open file descriptors of
every process of the split (run_split's whole tree), the database
connections per database (`pg_stat_activity`, MariaDB's process list), the
backlog (outbox rows pending, deliveries waiting for a retry, dead letters,
messages in the run's queues), and the requests' count, errors, p50 and p99
over the interval. After `--minutes` the load stops, the backlog is left to
drain (at most two minutes) and a last sample is taken.

The verdict, on the samples after the first `--warm-up` ones (the value a
series is judged against is its last warm-up sample):

- no error, no order left pending;
- memory flat: the RSS of every process, and their sum, at most 10 % above
  its value after warm-up, at every sample;
- file descriptors and connections flat: their sums at most 10 % above the
  value after warm-up (or 2 more, for small counts), at every sample;
- the backlog back to zero after the load;
- p99 of every interval at most 1.5 times the first interval after warm-up.

The series are written as JSON (`--json`) and drawn with matplotlib
(`--png`, if matplotlib is installed: `pip install -e '.[bench]'`).
Needs RabbitMQ, nginx and, for `--databases servers`, PostgreSQL and
MariaDB, as CI provides them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import split as split_bench  # noqa: E402 - bench/split.py: the split, its env, its helpers
from scale import ALIASES, CONTEXTS, ON_MARIADB, Databases  # noqa: E402 - its fresh databases

PASSWORD = split_bench.PASSWORD
ORDER_TIMEOUT = 60.0
REFRESH_EVERY = 300.0  # seconds between a client's token refreshes
FLAT = 0.10
P99_LIMIT = 1.5


# --- databases (bench/scale.py's: one fresh database per alias, orders on MariaDB) -----


def connections(databases: Databases) -> dict[str, int]:
    """Open connections per alias (bench/scale.py's databases)."""
    counts = dict.fromkeys(ALIASES, 0)
    by_name = {databases.name(alias): alias for alias in ALIASES}
    with databases.connect("default") as conn:
        cursor = conn.cursor()
        cursor.execute(
            "SELECT datname, count(*) FROM pg_stat_activity WHERE datname LIKE %s GROUP BY datname",
            (f"{databases.prefix}_%",),
        )
        for name, count in cursor.fetchall():
            counts[by_name[name]] = count
    for alias in ON_MARIADB:
        with databases.connect(alias) as conn:
            cursor = conn.cursor()
            cursor.execute(
                "SELECT count(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                (databases.name(alias),),
            )
            counts[alias] = cursor.fetchone()[0]
    return counts


BACKLOG = {
    "outbox_pending": "SELECT count(*) FROM cleave_outboxevent WHERE status = 'pending'",
    "deliveries_retrying": "SELECT count(*) FROM cleave_delivery WHERE status = 'retrying'",
    "dead_letters": "SELECT count(*) FROM cleave_deadletter WHERE status = 'dead'",
}


def backlog(databases: Databases) -> dict[str, int]:
    """Outbox rows pending, deliveries waiting for a retry and dead letters, in all aliases."""
    totals = dict.fromkeys(BACKLOG, 0)
    for alias in CONTEXTS:
        with databases.connect(alias) as conn:
            cursor = conn.cursor()
            for key, sql in BACKLOG.items():
                cursor.execute(sql)
                totals[key] += cursor.fetchone()[0]
    return totals


# --- the processes ----------------------------------------------------------------------


def tree(pids: dict[str, int]) -> dict[str, int]:
    """Every process of the split by a name: run_split's table, and their children below."""
    found: dict[str, int] = {}
    for name, pid in pids.items():
        queue, seen = [(name, pid)], 0
        while queue:
            label, current = queue.pop(0)
            if not Path(f"/proc/{current}").exists():
                continue
            found[label] = current
            for child in split_bench._children(current):
                seen += 1
                queue.append((f"{name}/{seen}", child))
    return found


def process_sample(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    out = {}
    for name, pid in tree(pids).items():
        try:
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            continue
        out[name] = {"rss_mib": split_bench._status_kib(pid, "VmRSS") / 1024, "fds": fds}
    return out


# --- the load ---------------------------------------------------------------------------


class Load:
    """Clients shopping through the gateway until stopped; every request timed."""

    def __init__(self, base: str, clients: int, checkouts_per_second: float, seed: int) -> None:
        self.base = base
        self.clients = clients
        self.pace = 1.0 / checkouts_per_second if checkouts_per_second > 0 else None
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.timings: list[tuple[float, float, bool]] = []  # (finished, ms, ok)
        self.errors: list[str] = []
        # what came instead of the expected answer: (status or "exception", Retry-After given)
        self.unexpected: Counter[tuple[str, bool]] = Counter()
        self.orders: dict[str, str] = {}  # order id -> final status ("pending" if it never ended)
        self.next_checkout = time.monotonic()
        self.threads: list[threading.Thread] = []

    def _timed(self, session, method: str, path: str, expected: int, **kwargs):
        started = time.perf_counter()
        response = None
        try:
            response = session.request(method, self.base + path, timeout=30, **kwargs)
            ok = response.status_code == expected
            if not ok:
                self._error(f"{method} {path}: {response.status_code} {response.text[:200]}")
                with self.lock:
                    answer = (str(response.status_code), "Retry-After" in response.headers)
                    self.unexpected[answer] += 1
        except Exception as exc:  # the load goes on; the error is counted
            ok = False
            self._error(f"{method} {path}: {exc!r}")
            with self.lock:
                self.unexpected[("exception", False)] += 1
        with self.lock:
            self.timings.append((time.time(), (time.perf_counter() - started) * 1000, ok))
        return response if ok else None

    def _error(self, text: str) -> None:
        with self.lock:
            self.errors.append(text)

    def _checkout_turn(self) -> bool:
        """Whether this client may check out now (the checkouts of all clients are paced)."""
        if self.pace is None:
            return False
        with self.lock:
            now = time.monotonic()
            if now < self.next_checkout:
                return False
            self.next_checkout = max(self.next_checkout + self.pace, now)
            return True

    def _client(self, index: int) -> None:
        import requests

        session = requests.Session()
        rng = random.Random(self.rng.random())
        email = f"soak-{uuid.uuid4().hex[:10]}@example.com"
        if not self._timed(
            session,
            "POST",
            "/api/users/",
            201,
            json={"email": email, "password": PASSWORD, "name": f"Soak {index}"},
        ):
            return
        token = self._timed(
            session, "POST", "/api/users/token", 200, json={"email": email, "password": PASSWORD}
        )
        if token is None:
            return
        tokens, signed_in = token.json(), time.monotonic()
        session.headers["Authorization"] = f"Bearer {tokens['access']}"
        turn = 0
        while not self.stop.is_set():
            turn += 1
            if time.monotonic() - signed_in > REFRESH_EVERY:
                # as a client does before its access token expires (the API's default: 15 min)
                refreshed = self._timed(
                    session,
                    "POST",
                    "/api/users/token/refresh",
                    200,
                    json={"refresh": tokens["refresh"]},
                )
                if refreshed is not None:
                    tokens, signed_in = refreshed.json(), time.monotonic()
                    session.headers["Authorization"] = f"Bearer {tokens['access']}"
            listed = self._timed(session, "GET", "/api/catalog/products", 200)
            if listed is None:
                time.sleep(1)
                continue
            product = rng.choice(listed.json()["results"])
            self._timed(session, "GET", f"/api/catalog/products/{product['id']}", 200)
            if turn % 20 == 0:
                self._timed(session, "PATCH", "/api/users/me", 200, json={"name": f"Soak {turn}"})
            if self._checkout_turn():
                added = self._timed(
                    session,
                    "POST",
                    "/api/orders/cart/items",
                    201,
                    json={"product_id": product["id"], "quantity": 1},
                )
                if added is not None:
                    card = "tok_chargeDeclined" if rng.random() < 0.25 else "tok_visa"
                    self._checkout(session, card)
            time.sleep(rng.uniform(0.2, 0.6))

    def _checkout(self, session, card: str) -> None:
        posted = self._timed(
            session, "POST", "/api/orders/checkout", 202, json={"payment_method": card}
        )
        if posted is None:
            return
        order_id = posted.json()["order_id"]
        deadline = time.monotonic() + ORDER_TIMEOUT
        status = "pending"
        while time.monotonic() < deadline:
            order = self._timed(session, "GET", f"/api/orders/{order_id}", 200)
            if order is not None and order.json()["status"] != "pending":
                status = order.json()["status"]
                break
            time.sleep(0.1)
        with self.lock:
            self.orders[order_id] = status
        if status == "pending":
            self._error(f"order {order_id} still pending after {ORDER_TIMEOUT:.0f} s")

    def start(self) -> None:
        self.threads = [
            threading.Thread(target=self._client, args=(n,), daemon=True)
            for n in range(self.clients)
        ]
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=ORDER_TIMEOUT + 30)

    def window(self, since: float) -> dict:
        with self.lock:
            recent = [(ms, ok) for at, ms, ok in self.timings if at >= since]
            errors = len(self.errors)
        times = sorted(ms for ms, _ in recent)
        return {
            "requests": len(recent),
            "failed": sum(1 for _, ok in recent if not ok),
            "p50_ms": split_bench._percentile(times, 0.5) if times else None,
            "p99_ms": split_bench._percentile(times, 0.99) if times else None,
            "errors_so_far": errors,
        }


# --- the run --------------------------------------------------------------------------


def sample(started: float, since: float, deployment, databases, load) -> dict:
    """One sample; what could not be read this time (a server refusing the sampler) is left out."""
    out = {
        "minute": round((time.time() - started) / 60, 2),
        "processes": process_sample(deployment.pids),
        "connections": {},
        "backlog": {},
        "load": load.window(since),
        "unread": [],
    }
    try:
        out["backlog"]["queued_messages"] = split_bench._queue_state(deployment.prefix)[0]
    except Exception as exc:
        out["unread"].append(f"queues: {exc}")
    if databases:
        try:
            out["connections"] = connections(databases)
            out["backlog"].update(backlog(databases))
        except Exception as exc:
            out["unread"].append(f"databases: {exc}")
    return out


def _flat(series: list[float], base: float, slack: float = 0.0) -> bool:
    limit = max(base * (1 + FLAT), base + slack)
    return all(value <= limit for value in series)


def verdict(samples: list[dict], warm_up: int, load: Load) -> dict:
    judged = samples[warm_up:]
    base = samples[warm_up - 1] if warm_up > 0 else samples[0]
    checks: dict[str, dict] = {}
    checks["no errors"] = {"ok": not load.errors, "errors": len(load.errors)}
    stranded = [order for order, status in load.orders.items() if status == "pending"]
    checks["no order left pending"] = {"ok": not stranded, "stranded": len(stranded)}
    worst = None
    for name, values in base["processes"].items():
        series = [s["processes"][name]["rss_mib"] for s in judged if name in s["processes"]]
        growth = max(series, default=values["rss_mib"]) / values["rss_mib"] - 1
        if worst is None or growth > worst[1]:
            worst = (name, growth)
    rss = [sum(p["rss_mib"] for p in s["processes"].values()) for s in judged]
    rss_base = sum(p["rss_mib"] for p in base["processes"].values())
    checks["memory flat"] = {
        "ok": _flat(rss, rss_base) and (worst is None or worst[1] <= FLAT),
        "rss_after_warm_up_mib": round(rss_base, 1),
        "rss_max_mib": round(max(rss, default=rss_base), 1),
        "largest_growth": worst and {"process": worst[0], "percent": round(worst[1] * 100, 1)},
    }
    fds = [sum(p["fds"] for p in s["processes"].values()) for s in judged]
    fds_base = sum(p["fds"] for p in base["processes"].values())
    checks["file descriptors flat"] = {
        "ok": _flat(fds, fds_base, slack=2),
        "after_warm_up": fds_base,
        "max": max(fds, default=fds_base),
    }
    conns = [sum(s["connections"].values()) for s in judged if s["connections"]]
    conns_base = sum(base["connections"].values())
    checks["connections flat"] = {
        "ok": _flat(conns, conns_base, slack=2),
        "after_warm_up": conns_base,
        "max": max(conns, default=conns_base),
    }
    last = samples[-1]["backlog"]
    checks["backlog drained"] = {
        "ok": bool(last) and not samples[-1]["unread"] and not any(last.values()),
        "at_the_end": last,
    }
    checks["every sample read"] = {
        "ok": not any(s["unread"] for s in samples),
        "unread": [(s["minute"], s["unread"]) for s in samples if s["unread"]][:5],
    }
    p99s = [s["load"]["p99_ms"] for s in judged[:-1] if s["load"]["p99_ms"] is not None]
    checks["p99 steady"] = {
        "ok": bool(p99s) and all(p <= p99s[0] * P99_LIMIT for p in p99s),
        "first_ms": p99s[0] if p99s else None,
        "max_ms": max(p99s, default=None),
    }
    return checks


def draw(samples: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no picture")
        return False
    minutes = [s["minute"] for s in samples]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    axes[0][0].plot(minutes, [sum(p["rss_mib"] for p in s["processes"].values()) for s in samples])
    axes[0][0].set_title("RSS of every process, MiB")
    axes[0][1].plot(minutes, [sum(p["fds"] for p in s["processes"].values()) for s in samples])
    axes[0][1].plot(minutes, [sum(s["connections"].values()) or None for s in samples])
    axes[0][1].legend(["open file descriptors", "database connections"])
    axes[0][1].set_title("Descriptors and connections")
    for key in samples[-1]["backlog"]:
        axes[1][0].plot(minutes, [s["backlog"].get(key) for s in samples], label=key)
    axes[1][0].legend()
    axes[1][0].set_title("Backlog")
    axes[1][1].plot(minutes, [s["load"]["p50_ms"] for s in samples], label="p50")
    axes[1][1].plot(minutes, [s["load"]["p99_ms"] for s in samples], label="p99")
    axes[1][1].legend()
    axes[1][1].set_title("Request latency over each interval, ms")
    for row in axes:
        for ax in row:
            ax.set_xlabel("minutes")
            ax.set_ylim(bottom=0)  # a creep shows as what it is, not magnified
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return True


def run(args) -> dict:
    databases = Databases() if args.databases == "servers" else None
    if databases:
        databases.create()
    extra = {**(databases.env() if databases else {}), "CLEAVE_LOG_LEVEL": "WARNING"}
    samples: list[dict] = []
    try:
        with split_bench.split(extra_env=extra) as deployment:
            load = Load(deployment.base_url, args.clients, args.checkouts, args.seed)
            started = time.time()
            load.start()
            end = started + args.minutes * 60
            since = started
            while time.time() < end:
                time.sleep(max(0.0, min(args.interval, end - time.time())))
                samples.append(sample(started, since, deployment, databases, load))
                since = time.time()
                print(json.dumps({"minute": samples[-1]["minute"], **samples[-1]["load"]}))
            load.finish()
            drained_by = time.time() + 120
            while time.time() < drained_by:
                final = sample(started, since, deployment, databases, load)
                if final["backlog"] and not final["unread"] and not any(final["backlog"].values()):
                    break
                time.sleep(2)
            samples.append(final)
    finally:
        if databases:
            databases.drop()
    checks = verdict(samples, args.warm_up, load)
    return {
        "minutes": args.minutes,
        "interval_s": args.interval,
        "clients": args.clients,
        "checkouts_per_second": args.checkouts,
        "databases": args.databases,
        "orders": len(load.orders),
        "requests": len(load.timings),
        "errors": load.errors[:20],
        "samples": samples,
        "checks": checks,
        "passed": all(check["ok"] for check in checks.values()),
    }


def main(argv: list[str] | None = None) -> dict:
    # SIGTERM ends the run like Ctrl-C: the split is stopped and the databases dropped
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30)
    parser.add_argument("--interval", type=float, default=60, help="seconds between samples")
    parser.add_argument("--warm-up", dest="warm_up", type=int, default=1, help="samples")
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--checkouts", type=float, default=0.5, help="per second, all clients")
    parser.add_argument("--databases", choices=("servers", "sqlite"), default="servers")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", default=str(HERE / "soak.json"))
    parser.add_argument("--png", default=str(HERE / "soak.png"), help='"" for no picture')
    parser.add_argument("--draw", metavar="JSON", help="only draw the series of an earlier run")
    args = parser.parse_args(argv)
    if args.draw:
        result = json.loads(Path(args.draw).read_text())
        draw(result["samples"], Path(args.png))
        return result
    if args.minutes * 60 < args.interval * (args.warm_up + 2):
        parser.error("the run must hold the warm-up and at least two samples after it")
    result = run(args)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    if args.png:
        draw(result["samples"], Path(args.png))
    for name, check in result["checks"].items():
        detail = {key: value for key, value in check.items() if key != "ok"}
        print(f"{'ok  ' if check['ok'] else 'FAIL'} {name}: {json.dumps(detail)}")
    print(f"{result['orders']} orders, {result['requests']} requests in {args.minutes:g} minutes")
    print("soak passed" if result["passed"] else "soak FAILED")
    return result


if __name__ == "__main__":
    sys.exit(0 if main()["passed"] else 1)
