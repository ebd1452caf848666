"""
Moving a context's database while checkouts run (`manage.py move_context`).

Starts the monolith as `make run` serves it (gunicorn, 2 workers of its
threads, SQLite files, in-process events, the embedded scheduler) on a fresh
data directory, seeds the demo shop, fills each moving context's alias to
`--rows` rows (published outbox events, copied like any other row), and runs
two buyers checking out all along (approved and declined cards; patient
clients that wait out a 503 as `Retry-After` says and send the same request
again) and a browser reading the catalogue (another context). Then it moves
payments to a fresh PostgreSQL database and orders to a fresh MariaDB one,
one after the other, and reports for each move:

- the write pause the command reports (the source frozen until the new
  location is recorded), and its migrate, copy and verify phases;
- what the buyers saw: 503s on their writes and their longest run;
- the catalogue's p50 and p99 in the 10 s before the move and while it ran;

and, once the traffic has stopped: failed orders (an answer other than
202, or a 503 waited out), stranded ones (still pending after 120 s), and
lost or duplicated events (analytics and notifications counting each
ending exactly once, no dead letter): `tests/support/traffic.py`'s checks.

    .venv/bin/python bench/move.py                # 10,000 rows per alias
    .venv/bin/python bench/move.py --rows 50000 --json bench/move.json

Needs PostgreSQL and MariaDB (127.0.0.1, as in CI). Every process it starts
is stopped by its pid, and the databases it creates are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402
import requests  # noqa: E402

django.setup()  # the test kit's helpers read the contexts' subscriptions

from tests.support.live import LiveSystem, own_secrets  # noqa: E402
from tests.support.moving import Shop, Targets, Urls, fill_outbox  # noqa: E402
from tests.support.split import FAST  # noqa: E402
from tests.support.traffic import Traffic, check_invariants, settled  # noqa: E402

MOVES = [("payments", "postgres"), ("orders", "mariadb")]
WRITES = ("/api/orders/cart/items", "/api/orders/checkout")


class Browser:
    """Reads the catalogue's product list back to back; latencies by the time they ended."""

    def __init__(self, url: str) -> None:
        self.url = f"{url}/api/catalog/products"
        self.samples: list[tuple[float, float]] = []
        self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                ok = session.get(self.url, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            ended = time.perf_counter()
            if ok:
                self.samples.append((time.monotonic(), (ended - started) * 1000))
            else:
                self.errors += 1
            time.sleep(0.02)

    def window(self, start: float, end: float) -> dict[str, float]:
        values = sorted(ms for at, ms in self.samples if start <= at <= end)
        if len(values) < 10:
            return {"n": len(values)}
        cuts = statistics.quantiles(values, n=100)
        return {"n": len(values), "p50_ms": round(cuts[49], 2), "p99_ms": round(cuts[98], 2)}


def _phase(output: str, name: str) -> float | None:
    found = re.search(rf"{name} ([\d.]+) s", output)
    return float(found.group(1)) if found else None


def run(rows: int) -> dict:
    targets = Targets()
    root = Path(tempfile.mkdtemp(prefix="cleave-move-bench-"))
    live = LiveSystem(root, transport="inprocess", broker_url="memory://", secrets=own_secrets())
    try:
        live.env.update({**FAST, "CLEAVE_EMBEDDED_SCHEDULER": "on"})
        live.migrate()
        live.manage("seed_demo")
        for label, _ in MOVES:
            fill_outbox(live.data_dir / f"{label}.sqlite3", label, rows)
        live.start_web(workers=2)
        url = live.web_url
        shop = Shop(live, url, {"catalog": Urls([url]), "inventory": Urls([url])})
        browser = Browser(url)
        browser.thread.start()
        results = []
        with Traffic(shop, patient=True) as traffic:
            time.sleep(10)
            for label, vendor in MOVES:
                target = getattr(targets, vendor)(label)
                in_alias = shop.sql(label, "SELECT count(*) FROM cleave_outboxevent")[0][0]
                before = time.monotonic()
                unavailable = len(traffic.unavailable)
                result = live.manage("move_context", label, "--to", target, "--noinput")
                after = time.monotonic()
                shop.where[label] = target
                seen = traffic.unavailable[unavailable:]
                results.append(
                    {
                        "context": label,
                        "to": vendor,
                        "outbox_rows": in_alias,
                        "rows": int(re.search(r": (\d+) rows in", result.stdout).group(1)),
                        "pause_s": _phase(result.stdout, "writes paused"),
                        "command_s": round(after - before, 2),
                        "buyers_503": len(seen),
                        "buyers_longest_503_run_s": round(
                            max((traffic.longest_pause(path) for path in WRITES), default=0.0), 2
                        ),
                        "catalog_before": browser.window(before - 10, before),
                        "catalog_during": browser.window(before, after),
                        # the command's report, the temporary data directory left out
                        "output": result.stdout.replace(str(root), "<data>").strip().splitlines(),
                    }
                )
                time.sleep(10)
        browser.stop.set()
        ends = settled(traffic)
        outcome = check_invariants(shop, traffic, ends)  # raises on any lost or double event
        return {
            "rows_per_alias": rows,
            "moves": results,
            "orders": len(traffic.orders),
            "outcome": dict(outcome),
            "failed": len(traffic.errors),
            "stranded": sum(1 for order in ends.values() if order["status"] == "pending"),
            "catalog_errors": browser.errors,
        }
    finally:
        live.stop_all()
        targets.drop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000, help="rows filled in each alias")
    parser.add_argument("--json", type=Path, help="write the figures there too")
    args = parser.parse_args()
    figures = run(args.rows)
    for move in figures["moves"]:
        before, during = move["catalog_before"], move["catalog_during"]
        print(
            f"{move['context']} -> {move['to']}: {move['rows']} rows, "
            f"pause {move['pause_s']} s (command {move['command_s']} s); "
            f"buyers met {move['buyers_503']} 503s; catalogue p99 "
            f"{before.get('p99_ms')} ms before, {during.get('p99_ms')} ms during"
        )
    print(
        f"{figures['orders']} orders {figures['outcome']}: {figures['failed']} failed, "
        f"{figures['stranded']} stranded, no event lost or handled twice"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
