"""
A split deployment against the monolith, end to end over the public API, in
one run (so the ratios compare runs made minutes apart on one machine).

    .venv/bin/python bench/split.py          # all three; 100 orders per level; 1, then 4 clients
    .venv/bin/python bench/split.py --only celery,split --orders 200 --clients 1,2,4 --json out.json

Three deployments, one after the other, each on fresh data (a temporary
`CLEAVE_DATA_DIR` of SQLite files, removed afterwards) and its own broker names
(a unique `CLEAVE_EVENT_QUEUE_PREFIX`, whose queues and exchanges are deleted
afterwards):

- monolith: `gunicorn -c python:config.gunicorn config.wsgi` (4 workers of one
  thread, as `make run` serves; `--workers`, `--threads`)
  after `migrate_all` and `seed_demo`, events and the checkout saga in-process;
- celery: the same monolith with `CLEAVE_EVENT_TRANSPORT=celery`, one worker for
  every context (`manage.py worker`, threads pool of 4, without mingle and
  gossip as the split's workers) and the relay (`manage.py events relay`): the
  saga runs on the worker;
- split: `manage.py run_split` with three groups (users,catalog; orders,
  payments, notifications, analytics; inventory), each a gunicorn web server
  (1 worker of 4 threads, its scheduler sweeping the relay) and a Celery
  worker, its own SQLite files,
  events over RabbitMQ (`CELERY_BROKER_URL`), calls between groups over HTTP,
  the admin console, the generated nginx gateway in front.

Against each, from this process over HTTP (one `requests` session per client
thread, keep-alive):

1. setup, not timed: customers registered (`POST /api/users/`, then a token),
   each with one cart holding 1 unit of a random demo product (never more of a
   product than its stock), 4 at a time; then the broker queues are left to
   drain;
2. warm-up, not timed: `--warm-up` checkouts per client at the highest level;
3. each client level (`--clients`, default 1 and 4 threads): `--orders`
   checkouts between the clients, started together. A checkout is `POST
   /api/orders/checkout` then `GET /api/orders/{id}` at once and every 5 ms
   after until the status is no longer pending; its latency runs from before
   the POST to the answer that shows it final. Throughput is confirmed orders
   / (last finish - first start); p50 and p99 are over the level's orders
   (the one-client level is the end-to-end latency one order at a time).
   The queues are left to drain between levels, so one level's leftover
   events are not charged to the next. From /proc, each level also reports
   the CPU (in cores) this run's processes used, what other work on the
   machine took meanwhile, and the hypervisor's steal: a level that shared
   the machine says so;
4. split only, the cost of one service hop: `GET /api/users/customers/<id>`
   through the service client (`ServiceClient("users", caller="orders")`),
   in a subprocess that sets Django up against the split's users SQLite file
   (same `CLEAVE_DATA_DIR`, so the groups accept its service token), in
   process (`InProcessCallTransport`: URL routing to the view, no socket) and over
   HTTP (`HttpCallTransport`, a pooled keep-alive session, to the users group's
   own web server, not through the gateway); after a warm-up, rounds of 100
   calls of each alternate; the added cost of a hop is the difference of the
   medians;
5. after the benchmark, the memory of every web process: VmRSS of the
   gunicorn master and of each worker (its children), their sum per server
   (an upper bound on what a pod running it would hold: pages the processes
   share count once in each) and the sum of their PSS (shared pages divided
   among the processes).

The targets (issue 12): the split at least 0.5x the throughput of the
monolith on the same transport (split against celery, at every level); at most
1 ms added per service hop at the median on loopback; each context's web server
at most 256 MiB, the monolith's at most 512 MiB (the manifests' request and
limit), judged on the RSS sum of master and workers.

The client threads run in this process on the same machine as the servers,
so they take CPU from them; so do the Celery workers' handlers of the events
that follow a confirmation (notification, analytics).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/split.py`: the tests' helpers live there
    sys.path.insert(0, str(ROOT))

# the child processes and the polling of the integration tests, and the split
# runner's port check: one implementation each
from cleave_tools.deploy.split import port_free  # noqa: E402
from tests.support.live import Process, wait_until  # noqa: E402

PYTHON = sys.executable
CONTEXTS = ("users", "catalog", "inventory", "orders", "payments", "notifications", "analytics")
LAYOUT = ("users,catalog", "orders,payments,notifications,analytics", "inventory")
BROKER = os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
DEPLOYMENTS = {
    "monolith": "monolith, in-process",
    "celery": "monolith, Celery",
    "split": "split, 3 groups + gateway",
}
PASSWORD = "bench-password-8"  # a throw-away customer's
POLL_EVERY = 0.005
ORDER_TIMEOUT = 60.0
TARGET_RATIO = 0.5
TARGET_HOP_MS = 1.0
TARGET_GROUP_MIB = 256
TARGET_MONOLITH_MIB = 512


# --- processes -----------------------------------------------------------------------------


def _free_port(span: int = 1) -> int:
    """A port with the next `span - 1` ports free as well (run_split uses port + 1..groups + 1)."""
    for _ in range(50):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port + span < 65535 and all(port_free(port + n) for n in range(span)):
            return port
    raise RuntimeError("no free ports")


def _env(data_dir: Path, prefix: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.endswith(("DATABASE_URL", "_SERVICE_URL", "_SERVICE_TOKEN"))
        and not key.startswith("CLEAVE_")
    }
    env.update(
        CLEAVE_DATA_DIR=str(data_dir),
        CLEAVE_EVENT_QUEUE_PREFIX=prefix,
        CELERY_BROKER_URL=BROKER,
        CLEAVE_THROTTLE_ANON="100000/minute",
        CLEAVE_THROTTLE_USER="100000/minute",
        CLEAVE_TRACING="off",
        CLEAVE_LOG_LEVEL="WARNING",
        CLEAVE_LOG_FORMAT="plain",
        DJANGO_SETTINGS_MODULE="config.settings",
        PYTHONUNBUFFERED="1",
    )
    return env


def _manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def _require_alive(process: Process) -> None:
    if not process.alive():
        raise RuntimeError(f"{process.name} exited:\n{process.output()[-4000:]}")


def _healthy(url: str, process: Process) -> bool:
    import requests

    _require_alive(process)
    try:
        return requests.get(f"{url}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


# --- the broker ----------------------------------------------------------------------------


def _queue_names(prefix: str) -> list[str]:
    names = [f"{prefix}{label}" for label in CONTEXTS] + [f"{prefix}celery"]
    return names + [f"{name}.dead" for name in names]


def _queue_state(prefix: str) -> tuple[int, dict[str, int]]:
    """Messages waiting or unacknowledged in this run's queues, and consumers per queue."""
    from kombu import Connection

    waiting, consumers = 0, {}
    with Connection(BROKER, connect_timeout=3) as conn:
        channel = conn.channel()
        for name in (f"{prefix}{label}" for label in CONTEXTS):
            try:
                ok = channel.queue_declare(name, passive=True)
            except Exception:  # not declared (yet): a fresh channel for the next one
                channel = conn.channel()
                continue
            waiting += ok.message_count
            consumers[name] = ok.consumer_count
    return waiting, consumers


def _drain(prefix: str, timeout: float = 120.0) -> float:
    """Wait until this run's queues are empty twice in a row; return the seconds it took."""
    started = time.monotonic()
    empty = 0
    while time.monotonic() - started < timeout:
        waiting, _ = _queue_state(prefix)
        empty = empty + 1 if waiting == 0 else 0
        if empty >= 2:
            break
        time.sleep(0.5)
    return time.monotonic() - started


def _delete_queues(prefix: str) -> None:
    from kombu import Connection

    with contextlib.suppress(Exception), Connection(BROKER, connect_timeout=3) as conn:
        channel = conn.channel()
        for queue in _queue_names(prefix):
            with contextlib.suppress(Exception):
                channel.queue_delete(queue)
        for exchange in ("cleave.events", "cleave.dead", "celery"):
            with contextlib.suppress(Exception):
                channel.exchange_delete(f"{prefix}{exchange}")


# --- memory --------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _status_kib(pid: int, field_name: str, source: str = "status") -> int:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/{source}").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    return 0


def _gunicorn_master(pid: int) -> int:
    """The gunicorn master at or below `pid` (`pid` itself under run_split's runner)."""
    queue = [pid]
    while queue:
        current = queue.pop(0)
        argv = _argv(current)
        # python -m gunicorn ..., or the gunicorn script; not the shell that names it
        if "gunicorn" in argv[1:3] or (argv and Path(argv[0]).name.startswith("gunicorn")):
            return current
        queue += _children(current)
    raise RuntimeError(f"no gunicorn process under pid {pid}")


def web_memory(pid: int) -> dict:
    """VmRSS and PSS of a gunicorn master and its workers, in MiB."""
    master = _gunicorn_master(pid)
    processes = []
    for role, each in [("master", master)] + [("worker", c) for c in _children(master)]:
        processes.append(
            {
                "role": role,
                "pid": each,
                "rss_mib": _status_kib(each, "VmRSS") / 1024,
                "pss_mib": _status_kib(each, "Pss", "smaps_rollup") / 1024,
            }
        )
    return {
        "processes": processes,
        "rss_sum_mib": sum(p["rss_mib"] for p in processes),
        "pss_sum_mib": sum(p["pss_mib"] for p in processes),
    }


def _cpu_snapshot() -> dict[str, float]:
    """
    CPU seconds so far: the machine's busy time, the hypervisor's steal, and
    what this process and its descendants used (every server a run starts is
    one), so that a level can tell how much CPU went to other work meanwhile.
    """
    tick = os.sysconf("SC_CLK_TCK")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    )
    parents, used = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        used[int(entry.name)] = int(fields[11]) + int(fields[12])
    ours, grew = {os.getpid()}, True
    while grew:
        found = {pid for pid, parent in parents.items() if parent in ours} - ours
        ours |= found
        grew = bool(found)
    return {
        "busy": (user + nice + system + irq + softirq) / tick,
        "steal": steal / tick,
        "ours": sum(used.get(pid, 0) for pid in ours) / tick,
    }


def _log_problems(logs: list[Path], limit: int = 12) -> list[str]:
    """Lines of the servers' logs that say something went wrong (read before they are removed)."""
    # warnings, errors and tracebacks, and the structured access log's 4xx and 5xx answers
    pattern = re.compile(r'Traceback|\b(WARNING|ERROR|CRITICAL)\b|"http_status": [45]\d\d')
    # run_split's own output repeats every process's lines ("time name | line"),
    # which are read from the process's log file
    relayed = re.compile(r"^\d\d:\d\d:\d\d \S+\s*\| ")
    found = []
    for log in logs:
        if not log.exists():
            continue
        for line in log.read_text(errors="replace").splitlines():
            if pattern.search(line) and not relayed.match(line):
                found.append(f"{log.name}: {line.strip()[:300]}")
    return found[:limit] + ([f"... and {len(found) - limit} more"] if len(found) > limit else [])


# --- the deployments -----------------------------------------------------------------------


@dataclass
class Deployment:
    kind: str
    base_url: str
    prefix: str
    data_dir: Path
    webs: dict[str, int]  # server name -> pid at or above its gunicorn master
    logs: list[Path] = field(default_factory=list)
    users_url: str = ""  # split: the users group's own web server
    pids: dict[str, int] = field(default_factory=dict)  # split: every process run_split runs


@contextlib.contextmanager
def monolith(kind: str, workers: int, threads: int):
    """One gunicorn for every context; with Celery, a worker for all of them and the relay."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    celery = kind == "celery"
    with tempfile.TemporaryDirectory(prefix="cleave-bench-split-") as tmp:
        data_dir, logs = Path(tmp) / "data", Path(tmp) / "logs"
        data_dir.mkdir()
        logs.mkdir()
        env = _env(data_dir, prefix)
        if celery:
            env["CLEAVE_EVENT_TRANSPORT"] = "celery"
        processes: list[Process] = []
        try:
            _manage(env, "migrate_all", "--noinput")
            _manage(env, "seed_demo")
            if celery:
                worker = Process(
                    "worker",
                    [
                        *[PYTHON, "manage.py", "worker", "--contexts", ",".join(CONTEXTS), "--"],
                        *["--pool", "threads", "--concurrency", "4", "-l", "WARNING"],
                        *["--without-mingle", "--without-gossip"],
                    ],
                    env,
                    logs / "worker.log",
                )
                processes.append(worker)
                relay = Process(
                    "relay", [PYTHON, "manage.py", "events", "relay"], env, logs / "relay.log"
                )
                processes.append(relay)

                def consuming() -> bool:
                    _require_alive(worker)
                    _, consumers = _queue_state(prefix)
                    return len(consumers) == len(CONTEXTS) and all(consumers.values())

                wait_until(consuming, timeout=120, what="the worker to consume every queue")
                wait_until(
                    lambda: _require_alive(relay) or "relay:" in relay.output(),
                    timeout=60,
                    what="the relay",
                )
            port = _free_port()
            url = f"http://127.0.0.1:{port}"
            web = Process(
                "web",
                [
                    *[PYTHON, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi"],
                    *["--bind", f"127.0.0.1:{port}", "--workers", str(workers)],
                    *["--threads", str(threads), "--timeout", "60"],
                ],
                env,
                logs / "web.log",
            )
            processes.append(web)
            wait_until(lambda: _healthy(url, web), timeout=120, what="the web server")
            yield Deployment(
                kind=kind,
                base_url=url,
                prefix=prefix,
                data_dir=data_dir,
                webs={"monolith.web": web.pid},
                logs=[p.log for p in processes],
            )
        finally:
            for process in reversed(processes):
                process.stop()
            if celery:
                _delete_queues(prefix)


SPLIT_ROW = re.compile(r"^(\S+\.(?:web|worker)|gateway)\s+\S+\s+(\S+)\s+(\d+)\s+(\S+)")


@contextlib.contextmanager
def split(extra_env: dict[str, str] | None = None, layout: tuple[str, ...] = LAYOUT):
    """`manage.py run_split` with three groups, stopped by SIGTERM to it (then by pid)."""
    prefix = f"bench{uuid.uuid4().hex[:8]}."
    with tempfile.TemporaryDirectory(prefix="cleave-bench-split-") as tmp:
        data_dir = Path(tmp) / "data"
        data_dir.mkdir()
        env = {**_env(data_dir, prefix), **(extra_env or {})}
        port = _free_port(span=len(layout) + 2)
        log = Path(tmp) / "run_split.log"
        out = log.open("wb")
        runner = subprocess.Popen(
            [PYTHON, "manage.py", "run_split", "--port", str(port), "--layout", " ".join(layout)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        pids: dict[str, int] = {}
        try:

            def ready() -> bool:
                if runner.poll() is not None:
                    raise RuntimeError(f"run_split exited:\n{log.read_text()[-6000:]}")
                return f"Cleave is split into {len(layout)} groups" in log.read_text()

            wait_until(ready, timeout=300, every=0.5, what="the split to be ready")
            addresses = {}
            for line in log.read_text().splitlines():
                match = SPLIT_ROW.match(line)
                if match:
                    pids[match.group(1)] = int(match.group(3))
                    addresses[match.group(1)] = match.group(2)
            # each group's web server and worker, the admin console and the gateway
            if len(pids) != 2 * len(layout) + 2:
                raise RuntimeError(f"run_split's table is not as expected:\n{log.read_text()}")
            users_web = f"{layout[0].replace(',', '-')}.web"
            logs = [log, *sorted((data_dir / "split" / "logs").glob("*.log"))]
            yield Deployment(
                kind="split",
                base_url=f"http://127.0.0.1:{port}",
                prefix=prefix,
                data_dir=data_dir,
                webs={
                    name: pid
                    for name, pid in pids.items()
                    if name.endswith(".web") and name != "admin.web"
                },
                logs=logs,
                users_url=addresses[users_web],
                pids=dict(pids),
            )
        finally:
            if runner.poll() is None:
                runner.send_signal(signal.SIGTERM)
                try:
                    runner.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(runner.pid, signal.SIGKILL)
                    runner.wait(timeout=10)
            out.close()
            time.sleep(1)
            for name, pid in pids.items():  # what the runner left behind, by its own pid
                if _alive(pid):
                    print(f"run_split left {name} ({pid}) running: killing it", file=sys.stderr)
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(pid, signal.SIGKILL)
            _delete_queues(prefix)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


# --- the client ----------------------------------------------------------------------------


@dataclass
class Customer:
    email: str
    id: str = ""
    token: str = ""


def _check(response, expected: int, what: str):
    if response.status_code != expected:
        raise RuntimeError(f"{what}: {response.status_code} {response.text[:500]}")
    return response


def setup_customers(base: str, count: int, seed: int, threads: int = 4) -> list[Customer]:
    """Register `count` customers over the API, each with 1 unit of a random product in the cart."""
    import requests

    products = _check(
        requests.get(f"{base}/api/catalog/products", params={"page_size": 100}, timeout=10),
        200,
        "list products",
    ).json()["results"]
    stock = {p["id"]: 100 for p in products}
    if count > sum(stock.values()):
        raise RuntimeError(f"{count} orders need more than the demo stock ({sum(stock.values())})")
    rng = random.Random(seed)
    picks = []
    for _ in range(count):  # never more of a product than the demo's 100 units
        product = rng.choice([pid for pid, left in stock.items() if left > 0])
        stock[product] -= 1
        picks.append(product)
    run = uuid.uuid4().hex[:8]
    customers = [Customer(email=f"bench-{run}-{n}@example.com") for n in range(count)]
    errors: list[BaseException] = []

    def register(share: list[int]) -> None:
        session = requests.Session()
        try:
            for n in share:
                customer = customers[n]
                body = {"email": customer.email, "password": PASSWORD, "name": f"Bench {n}"}
                created = _check(
                    session.post(f"{base}/api/users/", json=body, timeout=30), 201, "register"
                )
                customer.id = created.json()["id"]
                body = {"email": customer.email, "password": PASSWORD}
                token = _check(
                    session.post(f"{base}/api/users/token", json=body, timeout=30), 200, "token"
                )
                customer.token = token.json()["access"]
                _check(
                    session.post(
                        f"{base}/api/orders/cart/items",
                        json={"product_id": picks[n], "quantity": 1},
                        headers={"Authorization": f"Bearer {customer.token}"},
                        timeout=30,
                    ),
                    201,
                    "add to cart",
                )
        except BaseException as exc:  # raised below, after the other threads
            errors.append(exc)

    workers = [
        threading.Thread(target=register, args=(list(range(n, count, threads)),))
        for n in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return customers


def checkout(session, base: str, customer: Customer) -> dict:
    """POST checkout, then GET the order at once and every 5 ms until it is no longer pending."""
    headers = {"Authorization": f"Bearer {customer.token}"}
    started = time.perf_counter()
    posted = _check(
        session.post(
            f"{base}/api/orders/checkout",
            json={"payment_method": "tok_visa"},
            headers=headers,
            timeout=30,
        ),
        202,
        "checkout",
    )
    order_id = posted.json()["order_id"]
    polls = 0
    while True:
        polls += 1
        order = _check(
            session.get(f"{base}/api/orders/{order_id}", headers=headers, timeout=30), 200, "order"
        ).json()
        if order["status"] != "pending":
            break
        if time.perf_counter() - started > ORDER_TIMEOUT:
            break
        time.sleep(POLL_EVERY)
    finished = time.perf_counter()
    return {
        "status": order["status"],
        "reason": order.get("cancellation_reason"),
        "ms": (finished - started) * 1000,
        "polls": polls,
        "started": started,
        "finished": finished,
    }


def run_level(base: str, customers: list[Customer], clients: int) -> dict:
    """The customers checked out by `clients` threads started together."""
    import requests

    results: list[dict] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def client(share: list[Customer]) -> None:
        session = requests.Session()
        with contextlib.suppress(requests.RequestException):  # open the connection first
            session.get(f"{base}/health", timeout=10)
        start.wait()
        try:
            for customer in share:
                done = checkout(session, base, customer)
                with lock:
                    results.append(done)
        except BaseException as exc:  # raised below, after the other threads
            errors.append(exc)

    threads = [
        threading.Thread(target=client, args=(customers[n::clients],)) for n in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    confirmed = sorted(r["ms"] for r in results if r["status"] == "confirmed")
    failed = [f"{r['status']} ({r['reason']})" for r in results if r["status"] != "confirmed"]
    elapsed = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return {
        "clients": clients,
        "orders": len(results),
        "confirmed": len(confirmed),
        "failed": failed,
        "seconds": elapsed,
        "throughput": len(confirmed) / elapsed,
        "p50_ms": _percentile(confirmed, 0.5),
        "p99_ms": _percentile(confirmed, 0.99),
        "mean_polls": statistics.mean(r["polls"] for r in results),
        "latencies_ms": confirmed,
    }


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if q == 0.5:
        return statistics.median(values)
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


# --- the service hop -----------------------------------------------------------------------


def measure_hop(deployment: Deployment, customer_id: str, calls: int) -> dict:
    """Run `--hop` in a subprocess set up against the split's users database."""
    group = LAYOUT[0].replace(",", "-")
    env = _env(deployment.data_dir, deployment.prefix)
    # the split's own environment (its secrets sign the service tokens), as `manage.py --split`
    for line in (deployment.data_dir / "split" / "cleave.env").read_text().splitlines():
        name, _, value = line.partition("=")
        if name.strip() and not name.lstrip().startswith("#"):
            env[name.strip()] = value
    env.update(
        CLEAVE_CONTEXTS="users",
        CLEAVE_EVENT_TRANSPORT="celery",  # users' subscribers are elsewhere
        USERS_DATABASE_URL=f"sqlite:///{deployment.data_dir / 'split' / group / 'users.sqlite3'}",
        DATABASE_URL=f"sqlite:///{deployment.data_dir / 'split' / 'default.sqlite3'}",
        USERS_SERVICE_URL=deployment.users_url,
        CLEAVE_EMBEDDED_SCHEDULER="off",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    )
    done = subprocess.run(
        [PYTHON, str(Path(__file__).resolve()), "--hop-worker", json.dumps([customer_id, calls])],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the hop measurement failed:\n{done.stdout}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _hop(customer_id: str, calls: int) -> dict:
    """In the subprocess: the same call in process and over HTTP, alternating rounds of 100."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from cleave.calls.client import HttpCallTransport, InProcessCallTransport, ServiceClient

    clients = {
        "inprocess": ServiceClient("users", caller="orders", transport=InProcessCallTransport()),
        "http": ServiceClient("users", caller="orders", transport=HttpCallTransport()),
    }
    path = f"/customers/{customer_id}"
    timings: dict[str, list[float]] = {name: [] for name in clients}

    def call(name: str) -> float:
        started = time.perf_counter()
        response = clients[name].get(path)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            raise RuntimeError(f"{name}: {response.status_code} {response.content[:300]!r}")
        return elapsed

    for name in clients:  # warm-up: imports, connections, the breaker and the balancer
        for _ in range(50):
            call(name)
    rounds = max(1, -(-calls // 100))
    for _ in range(rounds):
        for name in clients:
            timings[name] += [call(name) for _ in range(100)]
    out = {
        name: {
            "calls": len(ms),
            "p50_ms": _percentile(ms, 0.5),
            "p99_ms": _percentile(ms, 0.99),
            "mean_ms": statistics.mean(ms),
        }
        for name, ms in timings.items()
    }
    out["added_p50_ms"] = out["http"]["p50_ms"] - out["inprocess"]["p50_ms"]
    out["url"] = os.environ["USERS_SERVICE_URL"]
    return out


# --- one deployment, the whole run, the report ---------------------------------------------


def bench_deployment(kind: str, args) -> dict:
    levels = args.levels
    warm = args.warm_up * max(levels)
    needed = warm + args.orders * len(levels)
    context = split() if kind == "split" else monolith(kind, args.workers, args.threads)
    started = time.monotonic()
    with context as deployment:
        result: dict = {
            "kind": kind,
            "label": DEPLOYMENTS[kind],
            "start_s": time.monotonic() - started,
        }
        print(f"[{kind}] up in {result['start_s']:.0f}s; {needed} customers", flush=True)
        mark = time.monotonic()
        customers = setup_customers(deployment.base_url, needed, seed=args.seed)
        first = customers[0]
        result["setup_s"] = time.monotonic() - mark
        if kind != "monolith":
            result["drain_after_setup_s"] = _drain(deployment.prefix)
        print(f"[{kind}] setup {result['setup_s']:.0f}s; warming up", flush=True)
        run_level(deployment.base_url, customers[:warm], max(levels))
        customers = customers[warm:]
        result["levels"] = []
        for clients in levels:
            if kind != "monolith":
                _drain(deployment.prefix)
            batch, customers = customers[: args.orders], customers[args.orders :]
            before = _cpu_snapshot()
            level = run_level(deployment.base_url, batch, clients)
            after = _cpu_snapshot()
            # cores' worth of CPU that other work took (and the hypervisor stole) meanwhile
            busy, ours = after["busy"] - before["busy"], after["ours"] - before["ours"]
            level["other_cores"] = max(0.0, busy - ours) / level["seconds"]
            level["steal_cores"] = (after["steal"] - before["steal"]) / level["seconds"]
            level["our_cores"] = ours / level["seconds"]
            result["levels"].append(level)
            print(
                f"[{kind}] {clients} client(s): {level['throughput']:.1f} orders/s, "
                f"p50 {level['p50_ms']:.1f} ms, p99 {level['p99_ms']:.1f} ms, "
                f"{len(level['failed'])} failed; other work {level['other_cores']:.2f} cores",
                flush=True,
            )
        if kind == "split":
            print(f"[{kind}] measuring the service hop", flush=True)
            result["hop"] = measure_hop(deployment, first.id, args.hop)
        result["memory"] = {name: web_memory(pid) for name, pid in deployment.webs.items()}
        result["log_problems"] = _log_problems(deployment.logs)
    result["total_s"] = time.monotonic() - started
    return result


def report(results: list[dict]) -> str:
    by_kind = {r["kind"]: r for r in results}
    lines = [
        "| deployment | clients | orders | confirmed | orders/s | p50 ms | p99 ms | polls/order "
        "| CPU ours / other / steal (cores) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        for level in r["levels"]:
            lines.append(
                f"| {r['label']} | {level['clients']} | {level['orders']} | "
                f"{level['confirmed']} | {level['throughput']:.1f} | {level['p50_ms']:.1f} | "
                f"{level['p99_ms']:.1f} | {level['mean_polls']:.1f} | "
                f"{level['our_cores']:.2f} / {level['other_cores']:.2f} / "
                f"{level['steal_cores']:.2f} |"
            )
    lines.append("")
    verdicts = []
    if "split" in by_kind and "celery" in by_kind:
        for s_level, c_level in zip(
            by_kind["split"]["levels"], by_kind["celery"]["levels"], strict=True
        ):
            ratio = s_level["throughput"] / c_level["throughput"]
            verdicts.append(
                f"throughput, {s_level['clients']} client(s): split / monolith on Celery = "
                f"{s_level['throughput']:.1f} / {c_level['throughput']:.1f} = {ratio:.2f}x "
                f"(target >= {TARGET_RATIO}x: {'met' if ratio >= TARGET_RATIO else 'MISSED'})"
            )
    if "monolith" in by_kind:
        for r in results:
            if r["kind"] == "monolith":
                continue
            for level, base in zip(r["levels"], by_kind["monolith"]["levels"], strict=True):
                verdicts.append(
                    f"for comparison, {level['clients']} client(s): {r['label']} / monolith "
                    f"in-process = {level['throughput'] / base['throughput']:.2f}x"
                )
    hop = by_kind.get("split", {}).get("hop")
    if hop:
        lines += [
            "| service call (split's users group) | calls | p50 ms | p99 ms | mean ms |",
            "| --- | ---: | ---: | ---: | ---: |",
        ]
        for name, label in (("inprocess", "in process"), ("http", "HTTP, keep-alive")):
            h = hop[name]
            lines.append(
                f"| {label} | {h['calls']} | {h['p50_ms']:.2f} | {h['p99_ms']:.2f} | "
                f"{h['mean_ms']:.2f} |"
            )
        lines.append("")
        added = hop["added_p50_ms"]
        verdicts.append(
            f"service hop: +{added:.2f} ms at the median over HTTP (target <= {TARGET_HOP_MS} ms: "
            f"{'met' if added <= TARGET_HOP_MS else 'MISSED'})"
        )
    lines += [
        "| deployment | web server | processes (RSS MiB) | RSS sum MiB | PSS sum MiB | target |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for r in results:
        for name, memory in r["memory"].items():
            target = TARGET_GROUP_MIB if r["kind"] == "split" else TARGET_MONOLITH_MIB
            each = ", ".join(f"{p['role']} {p['rss_mib']:.0f}" for p in memory["processes"])
            lines.append(
                f"| {r['label']} | {name} | {each} | {memory['rss_sum_mib']:.0f} | "
                f"{memory['pss_sum_mib']:.0f} | {target} |"
            )
            total = memory["rss_sum_mib"]
            largest = max(p["rss_mib"] for p in memory["processes"])
            verdicts.append(
                f"memory, {r['label']} {name}: master and workers {total:.0f} MiB RSS in all, "
                f"largest process {largest:.0f} MiB (target <= {target} MiB: "
                f"{'met' if total <= target else 'MISSED'} on the sum, "
                f"{'met' if largest <= target else 'MISSED'} per process)"
            )
    lines.append("")
    lines += verdicts
    for r in results:
        lines.append(
            f"{r['label']}: started in {r['start_s']:.0f}s, setup {r['setup_s']:.0f}s, "
            f"{r['total_s']:.0f}s in all"
        )
        failed = [f for level in r["levels"] for f in level["failed"]]
        if failed:
            lines.append(f"  failed orders: {failed[:10]}")
        for problem in r["log_problems"]:
            lines.append(f"  log: {problem}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=100, help="orders per client level")
    parser.add_argument("--clients", default="1,4", help="client threads per level (default 1,4)")
    parser.add_argument(
        "--only", default="monolith,celery,split", help="deployments, in this order"
    )
    parser.add_argument("--warm-up", type=int, default=3, help="untimed orders per client")
    parser.add_argument("--hop", type=int, default=300, help="service calls of each kind")
    parser.add_argument("--workers", type=int, default=4, help="the monolith's gunicorn workers")
    parser.add_argument("--threads", type=int, default=1, help="threads per monolith worker")
    parser.add_argument("--seed", type=int, default=12, help="the random choice of products")
    parser.add_argument("--json", metavar="FILE", help="also write the raw figures to FILE")
    parser.add_argument("--hop-worker", dest="hop_worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.hop_worker:
        customer_id, calls = json.loads(args.hop_worker)
        print(json.dumps(_hop(customer_id, calls)))
        return []
    try:
        args.levels = [int(n) for n in args.clients.split(",")]
    except ValueError:
        parser.error("--clients takes comma-separated numbers, e.g. 1,4")
    kinds = [k.strip() for k in args.only.split(",") if k.strip()]
    unknown = sorted(set(kinds) - set(DEPLOYMENTS))
    if unknown:
        parser.error(f"unknown deployments {unknown}; known: {list(DEPLOYMENTS)}")
    if min(args.levels) < 1 or args.orders < 1:
        parser.error("--orders and every client level must be at least 1")
    # SIGTERM unwinds like Ctrl-C, so every `finally` stops what it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    results = [bench_deployment(kind, args) for kind in kinds]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(report(results))
    return results


if __name__ == "__main__":
    main()
