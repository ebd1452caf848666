"""
Event bus throughput and commit-to-handler latency per transport, against raw
kombu on the same broker as the ceiling.

    .venv/bin/python bench/events.py                          # everything (needs both brokers)
    .venv/bin/python bench/events.py --transports inprocess,rabbitmq --events 1000

Each transport runs on an installation in subprocesses (tests/support/live.py):
fresh SQLite files, a publisher process (tests/support/publisher.py), the
relay sweep (`manage.py events relay`) and, for Celery, one worker consuming the
analytics queue (threads pool, 2 threads: this machine's cores; `--pool` and
`--concurrency` change it). Every transport runs the same trivial handler (the
probe's `noop` mode: the bus records the inbox row, the handler does nothing).

- throughput: N events published back to back by one process, one
  transaction each; events/s = N / (last handler start - first publish);
  ev/msg = mean events per broker message (the relay thread puts consecutive
  events of one type committed while it was busy in one message, at most
  CLEAVE_EVENT_MESSAGE_EVENTS; set it to 1 for one message per event);
- latency: M events published 20 ms apart (nothing queues); per event,
  commit → handler = inbox `processed_at` - outbox `occurred_at`, and the
  relay's share, outbox `published_at` - `occurred_at` (commit, the relay
  thread's publish, the broker's confirm);
- raw kombu, per broker: one process publishing persistent messages (with
  publisher confirms on RabbitMQ, as the relay does), one consumer process
  with the worker's prefetch acknowledging each one; same N and M.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BROKERS = {
    "rabbitmq": os.environ.get("CLEAVE_BENCH_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    "redis": os.environ.get("CLEAVE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/8"),
}
HANDLER = "contexts.analytics.handlers.probe_ticked"
WORKER_PROCESSES = 2
WORKER_POOL = "threads"
PACE = 0.02


def _setup_django() -> None:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CLEAVE_DATA_DIR", tempfile.mkdtemp(prefix="cleave-bench-"))
    import django

    django.setup()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _summary(latencies: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in latencies]
    return {
        "p50_ms": round(_percentile(ms, 50), 2),
        "p99_ms": round(_percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


# --- the bus, in an installation of subprocesses --------------------------------------------


def _bus_rows(live, ids: list[str]) -> list[tuple[float, float | None, float]]:
    """(occurred, published, handled) per event, as epoch seconds."""
    wanted = {uuid.UUID(i).hex for i in ids}
    outbox = {
        row[0]: (row[1], row[2])
        for row in live.sql("users", "SELECT id, occurred_at, published_at FROM cleave_outboxevent")
        if row[0] in wanted
    }
    handled = {
        row[0]: row[1]
        for row in live.sql(
            "analytics",
            "SELECT event_id, processed_at FROM cleave_inboxrecord WHERE handler = ?",
            (HANDLER,),
        )
        if row[0] in wanted
    }
    rows = []
    for key, (occurred, published) in outbox.items():
        rows.append((_ts(occurred), _ts(published) if published else None, _ts(handled[key])))
    return rows


def _events_per_message(live, ids: list[str]) -> float:
    """
    Mean events per broker message: the relay marks each round's confirmed rows
    with one UPDATE (one `published_at`), and a round's events of one type go
    in messages of at most CLEAVE_EVENT_MESSAGE_EVENTS.
    """
    from django.conf import settings

    wanted = {uuid.UUID(i).hex for i in ids}
    rounds = Counter(
        published
        for key, published in live.sql("users", "SELECT id, published_at FROM cleave_outboxevent")
        if key in wanted
    )
    size = settings.CLEAVE_EVENT_MESSAGE_EVENTS
    messages = sum(math.ceil(count / size) for count in rounds.values())
    return round(len(ids) / messages, 1)


def _wait_handled(live, count: int, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = live.scalar(
            "analytics", "SELECT count(*) FROM cleave_inboxrecord WHERE handler = ?", (HANDLER,)
        )
        if done >= count:
            return
        time.sleep(0.2)
    raise RuntimeError(f"only {done} of {count} events handled within {timeout}s")


def bench_bus(name: str, broker_url: str | None, events: int, paced: int) -> dict:
    from tests.support.live import LiveSystem

    transport = "inprocess" if broker_url is None else "celery"
    root = Path(tempfile.mkdtemp(prefix=f"cleave-bench-{name}-"))
    live = LiveSystem(root, transport=transport, broker_url=broker_url or "memory://", secrets={})
    live.env.update(
        {
            "CLEAVE_LOG_LEVEL": "WARNING",
            "CLEAVE_EVENT_MAX_ATTEMPTS": "5",
            "CLEAVE_EVENT_RELAY_INTERVAL": "2",
            "CLEAVE_REDIS_VISIBILITY_TIMEOUT": "60",
        }
    )
    try:
        live.migrate()
        live.start_relay(command=True)  # as deployed: the sweep runs, the fast path publishes
        if broker_url:
            live.start_worker(
                "bench",
                contexts=["analytics"],
                extra=("--pool", WORKER_POOL, "--concurrency", str(WORKER_PROCESSES)),
            )
        publisher = live.start_publisher()
        publisher.ask("publish noop 1 20")  # warm up: connections, caches, bindings
        _wait_handled(live, 20)

        started = time.time()
        ids = publisher.ask(f"publish noop 1000 {events}", timeout=600)
        _wait_handled(live, 20 + events)
        rows = _bus_rows(live, ids)
        elapsed = max(r[2] for r in rows) - min(r[0] for r in rows)
        publish_seconds = time.time() - started

        paced_ids = publisher.ask(f"publish noop 100000 {paced} {PACE}", timeout=600)
        _wait_handled(live, 20 + events + paced)
        paced_rows = _bus_rows(live, paced_ids)
        result = {
            "name": name,
            "events": events,
            "events_per_s": round(events / elapsed, 1),
            "publisher_events_per_s": round(events / publish_seconds, 1),
            "commit_to_handler": _summary([h - o for o, _p, h in paced_rows]),
        }
        if broker_url:
            result["relay_commit_to_confirmed"] = _summary([p - o for o, p, _h in paced_rows])
            result["events_per_message"] = _events_per_message(live, ids)
            result["paced_events_per_message"] = _events_per_message(live, paced_ids)
        print(json.dumps(result), flush=True)
        return result
    finally:
        live.stop_all()
        if broker_url:
            live.delete_broker_entities()


# --- raw kombu -------------------------------------------------------------------------------


def _connection(url: str):
    from kombu import Connection

    options = {"confirm_publish": True} if url.startswith("amqp") else {}
    return Connection(url, transport_options=options)


def raw_consume(url: str, queue_name: str, count: int, prefetch: int, out: str) -> None:
    """The raw consumer process: consume `count` messages, ack each, record latencies."""
    from kombu import Consumer, Queue

    received: list[tuple[float, float]] = []
    with _connection(url) as conn:
        queue = Queue(queue_name, durable=True, routing_key=queue_name)
        channel = conn.channel()
        queue(channel).declare()
        channel.basic_qos(0, prefetch, False)

        def on_message(body, message):
            received.append((body["t"], time.time()))
            message.ack()

        with Consumer(channel, queues=[queue], callbacks=[on_message], accept=["json"]):
            sys.stdout.write("ready\n")
            sys.stdout.flush()
            while len(received) < count:
                conn.drain_events(timeout=60)
    Path(out).write_text(json.dumps(received))


def _raw_round(url: str, queue_name: str, count: int, pace: float) -> list[tuple[float, float]]:
    from kombu import Producer

    out = tempfile.mktemp(suffix=".json")
    consumer = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--raw-consume",
            url,
            queue_name,
            str(count),
            str(WORKER_PROCESSES),
            out,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert consumer.stdout.readline().strip() == "ready"
    with _connection(url) as conn:
        producer = Producer(conn.channel())
        for n in range(count):
            producer.publish(
                {"t": time.time(), "n": n},
                routing_key=queue_name,
                exchange="",
                delivery_mode=2,
                serializer="json",
            )
            if pace:
                time.sleep(pace)
    consumer.wait(timeout=600)
    received = json.loads(Path(out).read_text())
    os.unlink(out)
    return received


def bench_raw(name: str, url: str, events: int, paced: int) -> dict:
    queue_name = f"cleave-bench-raw-{uuid.uuid4().hex[:8]}"
    try:
        _raw_round(url, queue_name, 20, 0)  # warm up
        burst = _raw_round(url, queue_name, events, 0)
        elapsed = max(r for _s, r in burst) - min(s for s, _r in burst)
        paced_rows = _raw_round(url, queue_name, paced, PACE)
        result = {
            "name": name,
            "events": events,
            "events_per_s": round(events / elapsed, 1),
            "commit_to_handler": _summary([r - s for s, r in paced_rows]),
        }
        print(json.dumps(result), flush=True)
        return result
    finally:
        with _connection(url) as conn:
            conn.channel().queue_delete(queue_name)


# --- the report ------------------------------------------------------------------------------


def report(results: list[dict]) -> str:
    lines = [
        f"{'run':<22}{'events/s':>10}{'ev/msg':>8}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'relay p50':>11}{'relay p99':>11}",
    ]
    for r in results:
        relay = r.get("relay_commit_to_confirmed", {})
        per_message = r.get("events_per_message", "-" if r["name"] == "inprocess" else 1)
        lines.append(
            f"{r['name']:<22}{r['events_per_s']:>10}{per_message:>8}"
            f"{r['commit_to_handler']['p50_ms']:>9}{r['commit_to_handler']['p99_ms']:>9}"
            f"{relay.get('p50_ms', '-'):>11}{relay.get('p99_ms', '-'):>11}"
        )
    by_name = {r["name"]: r for r in results}
    for broker in BROKERS:
        bus, raw = by_name.get(f"celery+{broker}"), by_name.get(f"raw kombu {broker}")
        if bus and raw:
            ratio = bus["events_per_s"] / raw["events_per_s"]
            added = bus["commit_to_handler"]["p50_ms"] - raw["commit_to_handler"]["p50_ms"]
            lines.append(
                f"{broker}: celery/raw rate {ratio:.2f}x (target >= 0.5x); commit-to-handler p50 "
                f"{added:+.2f} ms over raw kombu; relay commit-to-confirmed p50 "
                f"{bus['relay_commit_to_confirmed']['p50_ms']} ms (target < 5 ms)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    global WORKER_POOL, WORKER_PROCESSES
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=2000, help="events in the throughput run")
    parser.add_argument("--paced", type=int, default=300, help="events in the latency run")
    parser.add_argument(
        "--transports",
        default="inprocess,rabbitmq,redis",
        help="comma-separated: inprocess, rabbitmq, redis",
    )
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--pool", default=WORKER_POOL, help="the worker's pool (prefork, threads)")
    parser.add_argument(
        "--concurrency", type=int, default=WORKER_PROCESSES, help="the worker's processes/threads"
    )
    parser.add_argument("--raw-consume", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.raw_consume:
        url, queue_name, count, prefetch, out = args.raw_consume
        raw_consume(url, queue_name, int(count), int(prefetch), out)
        return []
    WORKER_POOL, WORKER_PROCESSES = args.pool, args.concurrency
    _setup_django()
    results = []
    for name in args.transports.split(","):
        if name == "inprocess":
            results.append(bench_bus("inprocess", None, args.events, args.paced))
        else:
            url = BROKERS[name]
            results.append(bench_bus(f"celery+{name}", url, args.events, args.paced))
            results.append(bench_raw(f"raw kombu {name}", url, args.events, args.paced))
    print()
    print(report(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
