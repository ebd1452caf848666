"""
A whole Cleave installation in subprocesses, for the tests that need real
workers: its own data directory (SQLite files every process shares), its own
exchange and queue names on the broker, a web server, workers, a relay and a
publisher, each a real process a test can kill.

The test process talks to it over HTTP and reads its databases directly
(`sql()`); pytest-django's test databases (in memory) are not involved.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CELERY = str(Path(PYTHON).with_name("celery"))
GUNICORN = str(Path(PYTHON).with_name("gunicorn"))
CONTEXTS = ["users", "catalog", "inventory", "orders", "payments", "notifications", "analytics"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], *, timeout: float = 20.0, every: float = 0.1, what=""):
    """Poll `check` until it returns something truthy; return that, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or check}: last {last!r}")


def gunicorn_args(
    port: int, *, workers: int = 1, threads: int = 4, host: str = "127.0.0.1"
) -> list[str]:
    """A web server on the loopback (or `host`), as the tests start one."""
    return [
        GUNICORN,
        "config.wsgi",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--timeout",
        "60",
    ]


class Process:
    """A child process with its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path, stdin=False):
        self.name = name
        self.log = log
        self._out = log.open("ab")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE if stdin else self._out,
            stderr=self._out,
            text=stdin,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, text: str, timeout: float = 30.0) -> None:
        def seen():
            if not self.alive():
                raise AssertionError(f"{self.name} exited:\n{self.output()[-4000:]}")
            return text in self.output()

        wait_until(seen, timeout=timeout, what=f"{text!r} in the log of {self.name}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, exactly like a crash."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=10)
        self._out.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                return
        self._out.close()


class Publisher(Process):
    """tests/support/publisher.py: publishes probe events on command."""

    def __init__(self, env: dict[str, str], log: Path):
        super().__init__(
            "publisher", [PYTHON, "-m", "tests.support.publisher"], env, log, stdin=True
        )
        self.expect("ready", timeout=30)

    def readline(self, timeout: float) -> str:
        import selectors

        selector = selectors.DefaultSelector()
        selector.register(self.popen.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"publisher said nothing for {timeout}s:\n{self.output()[-3000:]}")
        line = self.popen.stdout.readline()
        if not line:
            raise AssertionError(f"publisher exited:\n{self.output()[-3000:]}")
        return line.strip()

    def expect(self, prefix: str, timeout: float = 30.0) -> str:
        line = self.readline(timeout)
        if not line.startswith(prefix):
            raise AssertionError(
                f"publisher said {line!r}, not {prefix!r}:\n{self.output()[-3000:]}"
            )
        return line[len(prefix) :].strip()

    def send(self, command: str) -> None:
        self.popen.stdin.write(command + "\n")
        self.popen.stdin.flush()

    def ask(self, command: str, timeout: float = 60.0) -> list[str]:
        self.send(command)
        answer = self.expect("ok", timeout=timeout)
        return answer.split(",") if answer else []


class LiveSystem:
    """One installation: data directory, environment, processes, broker names."""

    def __init__(self, root: Path, *, transport: str, broker_url: str, secrets: dict[str, str]):
        self.root = root
        self.transport = transport
        self.broker_url = broker_url
        self.prefix = f"t{uuid.uuid4().hex[:8]}."
        self.data_dir = root / "data"
        self.logs = root / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs.mkdir(exist_ok=True)
        self.processes: list[Process] = []
        env = {
            key: value
            for key, value in os.environ.items()
            # every alias is an SQLite file in the data directory
            if not key.endswith("DATABASE_URL") and not key.startswith("PYTEST")
        }
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "config.settings",
                "CLEAVE_DATA_DIR": str(self.data_dir),
                "CLEAVE_EVENT_TRANSPORT": transport,
                "CELERY_BROKER_URL": broker_url,
                "CLEAVE_EVENT_QUEUE_PREFIX": self.prefix,
                "CLEAVE_SAGA_QUEUE_PREFIX": self.prefix,
                "CLEAVE_LOG_FORMAT": "plain",
                "CLEAVE_LOG_LEVEL": "INFO",
                "CLEAVE_EMBEDDED_SCHEDULER": "off",
                "CLEAVE_TRACING": "off",
                "CLEAVE_THROTTLE_ANON": "100000/minute",
                "CLEAVE_THROTTLE_USER": "100000/minute",
                # quick retries, quick recovery: the tests wait seconds, not minutes
                "CLEAVE_EVENT_MAX_ATTEMPTS": "3",
                "CLEAVE_EVENT_RETRY_BASE": "0.2",
                "CLEAVE_EVENT_RETRY_MAX": "2",
                "CLEAVE_EVENT_RELAY_GRACE": "0.5",
                "CLEAVE_EVENT_RELAY_INTERVAL": "0.3",
                "CLEAVE_EVENT_REDELIVER_AFTER": "3",
                "CLEAVE_REDIS_VISIBILITY_TIMEOUT": "4",
                "CLEAVE_REDIS_RESTORE_INTERVAL": "1",
                "CELERY_BROKER_CONNECTION_TIMEOUT": "1",
                "PYTHONUNBUFFERED": "1",
                **secrets,
            }
        )
        self.env = env
        self.web_url = ""

    # --- processes ----------------------------------------------------------------

    def manage(self, *args: str, timeout: float = 120.0, check: bool = True, env=None):
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} failed ({result.returncode}):\n"
                f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
            )
        return result

    def migrate(self) -> None:
        self.manage("migrate_all", "--noinput")

    def _spawn(self, process: Process) -> Process:
        self.processes.append(process)
        return process

    def start_worker(
        self,
        name: str = "w1",
        contexts: list[str] | None = None,
        extra: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ) -> Process:
        queues = [self.prefix + label for label in (contexts or CONTEXTS)]
        queues.append(self.prefix + "celery")
        args = [
            CELERY,
            "-A",
            "config",
            "worker",
            "-Q",
            ",".join(queues),
            # prefork, as in production; one child keeps the tests' order simple.
            # (The solo pool resumes slowly after a broker reconnect: messages
            # wait for the next timer tick of its event loop.)
            "--pool",
            "prefork",
            "--concurrency",
            "1",
            "-n",
            f"{name}-{self.prefix}%h",
            "--without-mingle",
            "--without-gossip",
            "--without-heartbeat",
            "--include",
            "tests.support.probe",
            "-l",
            "INFO",
            *extra,
        ]
        worker_env = {**self.env, **(env or {})}
        if wrap is not None:  # on another host (tests.support.hosts)
            args = wrap(args)
        worker = self._spawn(Process(name, args, worker_env, self.logs / f"{name}.log"))
        worker.wait_for_log("ready.", timeout=60)
        return worker

    def start_relay(self, name: str = "relay", *, command: bool = False) -> Process:
        """The relay loop: `manage.py events relay` itself, or one that also knows the probe."""
        if command:
            args = [PYTHON, "manage.py", "events", "relay"]
            ready = "relay: celery transport" if self.transport == "celery" else "relay:"
        else:
            args = [PYTHON, "-m", "tests.support.publisher", "relay"]
            ready = "relay ready"
        relay = self._spawn(Process(name, args, self.env, self.logs / f"{name}.log"))
        relay.wait_for_log(ready, timeout=60)
        return relay

    def start_periodic(self) -> Process:
        """`manage.py periodic`: the periodic jobs (saga recovery, sweeps) in the foreground."""
        periodic = self._spawn(
            Process("periodic", [PYTHON, "manage.py", "periodic"], self.env, self.logs / "p.log")
        )
        periodic.wait_for_log("periodic job(s)", timeout=60)
        return periodic

    def create_operator(self, username: str, email: str, password: str) -> None:
        """A superuser, as an operator creates the first one (`createsuperuser --noinput`)."""
        self.manage(
            "createsuperuser",
            "--noinput",
            "--username",
            username,
            "--email",
            email,
            env={"DJANGO_SUPERUSER_PASSWORD": password},
        )

    def start_publisher(self, name: str = "publisher") -> Publisher:
        return self._spawn(Publisher(self.env, self.logs / f"{name}.log"))

    def start_web(self, *, workers: int = 1) -> Process:
        port = free_port()
        args = gunicorn_args(port, workers=workers)
        web = self._spawn(Process("web", args, self.env, self.logs / "web.log"))
        self.web_url = f"http://127.0.0.1:{port}"

        def healthy():
            if not web.alive():
                raise AssertionError(f"web exited:\n{web.output()[-4000:]}")
            try:
                return requests.get(f"{self.web_url}/health", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(healthy, timeout=60, what="the web server")
        return web

    def stop_all(self) -> None:
        # no graceful shutdown needed: what they hold is thrown away with the test
        for process in reversed(self.processes):
            process.kill()
        self.processes.clear()

    # --- reading the databases ---------------------------------------------------------

    def sql(self, alias: str, query: str, params: tuple = ()) -> list[tuple]:
        with contextlib.closing(
            sqlite3.connect(self.data_dir / f"{alias}.sqlite3", timeout=30)
        ) as conn:
            return conn.execute(query, params).fetchall()

    def scalar(self, alias: str, query: str, params: tuple = ()) -> Any:
        rows = self.sql(alias, query, params)
        return rows[0][0] if rows else None

    def probe_count(self, n: int) -> int:
        value = self.scalar(
            "analytics", "SELECT value FROM analytics_counter WHERE name = ?", (f"probe:{n}",)
        )
        return int(float(value)) if value is not None else 0

    def probe_counts(self) -> dict[int, int]:
        rows = self.sql(
            "analytics", "SELECT name, value FROM analytics_counter WHERE name LIKE 'probe:%'"
        )
        return {int(name.split(":")[1]): int(float(value)) for name, value in rows}

    def inbox(self, alias: str, event_id: str) -> int:
        return self.scalar(
            alias,
            "SELECT count(*) FROM cleave_inboxrecord WHERE event_id = ?",
            (uuid.UUID(event_id).hex,),
        )

    def outbox_status(self, event_id: str, alias: str = "users") -> str | None:
        return self.scalar(
            alias, "SELECT status FROM cleave_outboxevent WHERE id = ?", (uuid.UUID(event_id).hex,)
        )

    def dead_letters(self, alias: str = "analytics") -> list[dict[str, Any]]:
        with contextlib.closing(sqlite3.connect(self.data_dir / f"{alias}.sqlite3")) as conn:
            conn.row_factory = sqlite3.Row
            rows = conn.execute("SELECT * FROM cleave_deadletter ORDER BY dead_at").fetchall()
            return [dict(row) for row in rows]

    def flag(self, name: str, on: bool = True) -> None:
        path = self.data_dir / "probe" / name
        path.parent.mkdir(exist_ok=True)
        if on:
            path.touch()
        else:
            path.unlink(missing_ok=True)

    def starts(self, n: int) -> int:
        path = self.data_dir / "probe" / f"started-{n}"
        return len(path.read_text().splitlines()) if path.exists() else 0

    # --- the broker ------------------------------------------------------------------

    def delete_broker_entities(self) -> None:
        """Remove this installation's exchanges and queues from the broker."""
        from kombu import Connection

        names = [self.prefix + label for label in CONTEXTS]
        queues = [*names, *(f"{name}.dead" for name in names), f"{self.prefix}celery"]
        exchanges = [
            f"{self.prefix}cleave.events",
            f"{self.prefix}cleave.dead",
            f"{self.prefix}celery",
        ]
        with contextlib.suppress(Exception), Connection(self.broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            if self.broker_url.startswith("redis"):
                self._delete_redis_keys(channel.client)
                return
            for queue in queues:
                with contextlib.suppress(Exception):
                    channel.queue_delete(queue)
            for exchange in exchanges:
                with contextlib.suppress(Exception):
                    channel.exchange_delete(exchange)

    def _delete_redis_keys(self, client) -> None:
        """Queues, binding tables and unacknowledged messages of this installation."""
        import json

        for key in client.scan_iter(match=f"*{self.prefix}*"):
            client.delete(key)
        for tag, raw in client.hscan_iter("unacked"):
            with contextlib.suppress(ValueError, TypeError):
                _payload, exchange, routing_key = json.loads(raw)
                if (exchange or "").startswith(self.prefix) or (routing_key or "").startswith(
                    self.prefix
                ):
                    client.hdel("unacked", tag)
                    client.zrem("unacked_index", tag)

    def queue_depth(self, label: str) -> int:
        from kombu import Connection

        with Connection(self.broker_url, connect_timeout=3) as conn:
            channel = conn.channel()
            if self.broker_url.startswith("redis"):
                return channel.client.llen(self.prefix + label)
            return channel.queue_declare(self.prefix + label, passive=True).message_count


def own_secrets() -> dict[str, str]:
    """This process's secrets, so that tokens it mints are valid in a live system given them."""
    from django.conf import settings

    names = ("DJANGO_SECRET_KEY", "CLEAVE_JWT_SECRET", "CLEAVE_SERVICE_JWT_SECRET")
    return {name: getattr(settings, name.removeprefix("DJANGO_")) for name in names}


@contextlib.contextmanager
def live_system(root: Path, **kwargs) -> Iterator[LiveSystem]:
    system = LiveSystem(root, **kwargs)
    try:
        yield system
    finally:
        system.stop_all()
        system.delete_broker_entities()


# --- stopping and starting the broker servers ------------------------------------------

REDIS_START = [
    "redis-server",
    "--daemonize",
    "yes",
    "--bind",
    "127.0.0.1",
    "-::1",
    "--port",
    "6379",
    "--save",
    "",
    "--appendonly",
    "no",
    "--dir",
    "/var/lib/redis",
    "--logfile",
    "/var/log/redis/ci.log",
]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _redis_up() -> bool:
    try:
        out = subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "ping"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.stdout.strip() == "PONG"


def stop_broker(kind: str) -> None:
    """Stop RabbitMQ's application or shut Redis down (without saving: it loses everything)."""
    if kind == "rabbitmq":
        subprocess.run(["rabbitmqctl", "stop_app"], capture_output=True, timeout=60, check=True)
    else:
        subprocess.run(
            ["redis-cli", "-h", "127.0.0.1", "-p", "6379", "shutdown", "nosave"],
            capture_output=True,
            timeout=30,
            check=False,
        )
        wait_until(lambda: not _redis_up(), timeout=20, what="Redis to stop")


def start_broker(kind: str) -> None:
    """Start it again and wait until it answers (always safe to call)."""
    if kind == "rabbitmq":
        subprocess.run(["rabbitmqctl", "start_app"], capture_output=True, timeout=120, check=False)
        subprocess.run(
            ["rabbitmqctl", "await_startup"], capture_output=True, timeout=120, check=False
        )
        wait_until(lambda: _port_open(5672), timeout=60, what="RabbitMQ to listen")
    else:
        if not _redis_up():
            Path("/var/lib/redis").mkdir(parents=True, exist_ok=True)
            Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
            subprocess.run(REDIS_START, capture_output=True, timeout=30, check=False)
        wait_until(_redis_up, timeout=30, what="Redis to answer")


@contextlib.contextmanager
def broker_down(kind: str) -> Iterator[None]:
    """The broker is stopped inside the block and always running again after it."""
    try:
        stop_broker(kind)
        yield
    finally:
        start_broker(kind)
