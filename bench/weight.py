"""
The weight of a local split: `make run-split`'s processes and their memory.

    .venv/bin/python bench/weight.py                  # one group per context (seven)
    .venv/bin/python bench/weight.py --layout "users,catalog orders,payments inventory"

Starts `manage.py run_split` on a fresh data directory (demo data left out, so
that what is measured is the split at rest, not the seeding), waits until
every group's `/ready`, the admin console's and the gateway's `/health`
answer, and reports:

- how long that took from the start of run_split (migrations included) and
  from the moment the processes were started;
- every process it runs (run_split's whole tree), by kind, with VmRSS and PSS
  (RSS counts the pages processes share once per process: an upper bound, the
  figure the targets are stated in; PSS shares them out);
- each web server (a gunicorn master and its worker): RSS of the two.

Then it stops the split (SIGTERM to run_split, which stops every process).
Needs RabbitMQ (CELERY_BROKER_URL) and nginx, as `make run-split` does.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        children[int(stat.rsplit(")", 1)[1].split()[1])].append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _kind(cmdline: str) -> str:
    for needle, kind in (
        ("gunicorn", "gunicorn"),
        ("celery", "celery worker"),
        ("nginx", "nginx"),
        ("cleave_tools.deploy.split", "runner"),
        ("run_split", "run_split"),
    ):
        if needle in cmdline:
            return kind
    return cmdline[:40]


def measure(root_pid: int) -> dict:
    rows = []
    for pid in _tree(root_pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ").strip()
            rss, pss = _status_kib(pid, "VmRSS"), _pss_kib(pid)
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        rows.append({"pid": pid, "ppid": parent, "kind": _kind(cmdline), "rss": rss, "pss": pss})
    kinds: dict[str, dict] = {}
    for row in rows:
        entry = kinds.setdefault(row["kind"], {"processes": 0, "rss_mib": 0.0, "pss_mib": 0.0})
        entry["processes"] += 1
        entry["rss_mib"] += row["rss"] / 1024
        entry["pss_mib"] += row["pss"] / 1024
    masters = [
        r
        for r in rows
        if r["kind"] == "gunicorn"
        and r["ppid"] not in {x["pid"] for x in rows if x["kind"] == "gunicorn"}
    ]
    servers = []
    for master in masters:
        workers = [r for r in rows if r["ppid"] == master["pid"]]
        servers.append(
            {
                "master_rss_mib": master["rss"] / 1024,
                "workers_rss_mib": sum(w["rss"] for w in workers) / 1024,
                "server_rss_mib": (master["rss"] + sum(w["rss"] for w in workers)) / 1024,
            }
        )
    return {
        "processes": len(rows),
        "rss_mib": sum(r["rss"] for r in rows) / 1024,
        "pss_mib": sum(r["pss"] for r in rows) / 1024,
        "by_kind": {
            k: {**v, "rss_mib": round(v["rss_mib"]), "pss_mib": round(v["pss_mib"])}
            for k, v in sorted(kinds.items())
        },
        "web_servers": servers,
        "largest_web_server_rss_mib": max((s["server_rss_mib"] for s in servers), default=0),
    }


def ready(port: int, log: Path) -> bool:
    if "Cleave is split into" not in log.read_text(errors="replace"):
        return False
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--layout", default="")
    parser.add_argument("--port", type=int, default=28400)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cleave-weight-") as data:
        log = Path(data) / "run_split.log"
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CLEAVE_")},
            "CLEAVE_DATA_DIR": data,
            "CLEAVE_EVENT_QUEUE_PREFIX": f"w{os.getpid()}.",
        }
        started = time.monotonic()
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "manage.py", "run_split", "--port", str(args.port), "--no-seed"]
                + (["--layout", args.layout] if args.layout else []),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            deadline = started + 300
            while not ready(args.port, log):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"the split did not start:\n{log.read_text()[-3000:]}")
                time.sleep(0.2)
            serving = time.monotonic() - started
            text = log.read_text(errors="replace")
            first = text.find("started with pid")
            time.sleep(3)  # let every process settle (workers connected, first sweeps done)
            figures = measure(process.pid)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        figures["serving_after_s"] = round(serving, 1)
        figures["processes_started_at_log_offset"] = first
        if args.json:
            print(json.dumps(figures, indent=2))
            return
        print(f"serving after {serving:.1f} s (run_split started, migrations included)")
        rss, pss = figures["rss_mib"], figures["pss_mib"]
        print(f"{figures['processes']} processes, RSS {rss:.0f} MiB, PSS {pss:.0f} MiB")
        for kind, entry in figures["by_kind"].items():
            count, rss, pss = entry["processes"], entry["rss_mib"], entry["pss_mib"]
            print(f"  {kind:<14} {count:>3}  RSS {rss:>5} MiB  PSS {pss:>5} MiB")
        largest = figures["largest_web_server_rss_mib"]
        print(f"largest web server (master and worker): {largest:.0f} MiB RSS")


if __name__ == "__main__":
    main()
