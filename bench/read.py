"""
The read path: the product list against `/health` on the same gunicorn.

    .venv/bin/python bench/read.py                       # 3 rounds of 10 s per URL
    .venv/bin/python bench/read.py --rounds 5 --duration 5 --json
    .venv/bin/python bench/read.py --root /path/to/an/older/checkout   # the same, of another tree

Sets up a fresh data directory (SQLite, migrated, the demo catalogue seeded:
12 products), starts gunicorn as `make run` does (`config.gunicorn`, here 2
workers of one thread, throttles lifted, the embedded scheduler off so that
its sweeps do not take turns from the requests), and runs wrk (8
connections, 2 threads) against, in each round, one after the other:

- `/health`: the cheapest answer the server gives, the yardstick;
- `/api/catalog/products`: the public list a shop front asks for most;
- the same list with `If-None-Match` of its current `ETag`: a client (or a
  cache in front) that already holds the page (skipped when the tree under
  test sends no ETag).

Each URL's req/s is the median of its rounds; the ratio of each read to
`/health` is the median of the rounds' ratios (rounds are run within a few
seconds of each other, as this machine's speed drifts). Needs wrk (Debian's
package).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
PRODUCTS = "/api/catalog/products"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wrk(url: str, *, duration: int, header: str | None = None) -> float:
    args = ["wrk", "-t2", "-c8", f"-d{duration}s", "--latency"]
    if header:
        args += ["-H", header]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{url}: {errors.group(1)} answers were not 2xx/3xx:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds of wrk per URL")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--root", type=Path, default=ROOT, help="the tree to serve")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("bench/read.py needs wrk: apt-get install wrk")

    python = sys.executable
    data = Path(tempfile.mkdtemp(prefix="cleave-read-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith("DATABASE_URL") and not key.startswith("CLEAVE_")
    }
    env.update(
        CLEAVE_DATA_DIR=str(data),
        DJANGO_SETTINGS_MODULE="config.settings",
        CLEAVE_THROTTLE_ANON="1000000/second",
        CLEAVE_THROTTLE_USER="1000000/second",
        CLEAVE_EMBEDDED_SCHEDULER="off",
        CLEAVE_LOG_LEVEL="WARNING",
        # the tree under test first: its config, contexts and platform (cleave)
        PYTHONPATH=f"{args.root}:{args.root / 'platform'}",
    )
    for command in (["migrate_all", "--noinput"], ["seed_demo"]):
        subprocess.run(
            [python, "manage.py", *command], cwd=args.root, env=env, check=True, capture_output=True
        )
    port = free_port()
    server = subprocess.Popen(
        [
            str(Path(python).with_name("gunicorn")),
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(args.workers),
            "--threads",
            "1",
        ],
        cwd=args.root,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("gunicorn did not start")
            time.sleep(0.2)
        listed = requests.get(f"{base}{PRODUCTS}", timeout=5)
        assert listed.status_code == 200 and listed.json()["count"] == 12, listed.text[:300]
        tag = listed.headers.get("ETag")
        runs = {"health": [], "products": [], "products_304": []}
        for _ in range(args.rounds):
            runs["health"].append(wrk(f"{base}/health", duration=args.duration))
            runs["products"].append(wrk(f"{base}{PRODUCTS}", duration=args.duration))
            if tag:
                runs["products_304"].append(
                    wrk(f"{base}{PRODUCTS}", duration=args.duration, header=f"If-None-Match: {tag}")
                )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)

    report = {
        "workers": args.workers,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "etag": bool(tag),
        "req_per_s": {name: statistics.median(v) for name, v in runs.items() if v},
        "ratio_to_health": {
            name: statistics.median(r / h for r, h in zip(v, runs["health"], strict=True))
            for name, v in runs.items()
            if v and name != "health"
        },
        "runs": runs,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"gunicorn {args.workers} workers x 1 thread; wrk 8 connections; {args.rounds} rounds"
        )
        for name, value in report["req_per_s"].items():
            ratio = report["ratio_to_health"].get(name)
            shown = f"  {ratio:.2f}x /health" if ratio else ""
            print(f"  {name:<14}{value:>10.0f} req/s{shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
