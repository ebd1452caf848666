"""
A split deployment on one machine (`make run-split`, `manage.py run_split`).

Every group of contexts runs as its own process group: a gunicorn web server
serving only its contexts (`CLEAVE_CONTEXTS`), whose scheduler also runs the
relay sweep and the other periodic jobs, and a Celery worker on their queues,
each context's SQLite file in the group's own directory under
`<CLEAVE_DATA_DIR>/split/<group>/` (or `<LABEL>_DATABASE_URL` when set). Events
travel over the broker (`CELERY_BROKER_URL`); calls between groups go over HTTP
(`<LABEL>_SERVICE_URL` of every other group). Beside them, the *admin console*:
a web server with every context installed and every group's database, which
serves `/admin/` as the monolith does (its calls go over HTTP to the groups,
its events over the broker; it runs no handler and no periodic job). In front,
an nginx gateway generated from the route table serves them all on one port.

The split keeps its own files in `<CLEAVE_DATA_DIR>/split/`, which is the data
directory of every process of it: the secrets generated there once, static
files, the file-based mail (`split/mail/`), the `default` alias (operators and
their admin sessions, shared by every group), an SQLite file unless
`DATABASE_URL` is set. `split/cleave.env` holds the environment of the admin
console, so that `manage.py --split <command>` (createsuperuser, sagas, events,
status) reaches the split's data.

The processes are run by `cleave_tools.deploy.processes.Runner` (one output,
prefixed per process, also written to a log file each; SIGINT or SIGTERM
stops them all, SIGKILL after a grace period). This module only plans the
processes and prepares their databases.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path

import requests
from kombu import Connection

from cleave_tools.deploy.processes import Runner

DEFAULT_THREADS = 4


class SplitError(Exception):
    """The split cannot start; the message says why and what to do."""


@dataclass
class Group:
    name: str
    contexts: list[str]
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def process_names(self) -> list[str]:
        return [f"{self.name}.web", f"{self.name}.worker"]


ADMIN_CONSOLE = "admin"
ENV_FILE = "cleave.env"


def parse_layout(text: str | None, known: list[str]) -> list[Group]:
    """
    `"users,catalog orders,payments ..."`: groups separated by spaces, contexts
    by commas; every known context exactly once. Empty: one group per context.
    """
    if not text or not text.strip():
        return [Group(name=label, contexts=[label]) for label in known]
    groups: list[Group] = []
    seen: list[str] = []
    for chunk in text.split():
        labels = [label.strip() for label in chunk.split(",") if label.strip()]
        unknown = [label for label in labels if label not in known]
        if unknown:
            raise SplitError(f"SPLIT names unknown contexts {unknown}; known: {known}")
        twice = [label for label in labels if label in seen]
        if twice:
            raise SplitError(f"SPLIT names {twice} in more than one group")
        seen += labels
        groups.append(Group(name="-".join(labels), contexts=labels))
    missing = [label for label in known if label not in seen]
    if missing:
        raise SplitError(f"SPLIT leaves out {missing}: every context must be in one group")
    return groups


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@dataclass
class Plan:
    root: Path  # the project root (manage.py)
    data_dir: Path
    port: int
    groups: list[Group]
    base_env: dict[str, str]
    admin_port: int = 0
    admin_env: dict[str, str] = field(default_factory=dict)
    python: str = sys.executable
    threads: int = DEFAULT_THREADS
    nginx: str = "nginx"

    @property
    def split_dir(self) -> Path:
        return self.data_dir / "split"

    @property
    def logs(self) -> Path:
        return self.split_dir / "logs"

    @property
    def gateway_dir(self) -> Path:
        return self.split_dir / "gateway"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def env_file(self) -> Path:
        return self.split_dir / ENV_FILE

    def log_file(self, process: str) -> Path:
        return self.logs / f"{process}.log"

    def web(self, port: int) -> list[str]:
        """A gunicorn web server on `port` (one worker of `threads` threads)."""
        return [
            self.python,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--threads",
            str(self.threads),
            "--timeout",
            "60",
        ]

    def commands(self) -> list[tuple[str, list[str], dict[str, str]]]:
        """(name, argv, env) of every process, the admin console and the gateway last."""
        python = self.python
        out = []
        for group in self.groups:
            labels = ",".join(group.contexts)
            out += [
                (f"{group.name}.web", self.web(group.port), group.env),
                (
                    f"{group.name}.worker",
                    [
                        python,
                        "manage.py",
                        "worker",
                        "--contexts",
                        labels,
                        "--",
                        "--pool",
                        "threads",
                        "--concurrency",
                        str(self.threads),
                        "--without-mingle",
                        "--without-gossip",
                        "-l",
                        "INFO",
                    ],
                    group.env,
                ),
            ]
        out.append((f"{ADMIN_CONSOLE}.web", self.web(self.admin_port), self.admin_env))
        conf = self.gateway_dir / "nginx.conf"
        out.append(
            (
                "gateway",
                [self.nginx, "-p", str(self.gateway_dir), "-e", "stderr", "-c", str(conf)],
                self.base_env,
            )
        )
        return out


def make_plan(
    *,
    root: Path,
    data_dir: Path,
    port: int,
    layout: str | None,
    known: list[str],
    env: dict[str, str] | None = None,
    threads: int = DEFAULT_THREADS,
) -> Plan:
    """Ports, directories and the environment of every group."""
    base = dict(os.environ if env is None else env)
    groups = parse_layout(layout, known)
    for index, group in enumerate(groups, start=1):
        group.port = port + index
    admin_port = port + len(groups) + 1
    split_dir = data_dir / "split"
    base["CLEAVE_DATA_DIR"] = str(split_dir)
    base.setdefault("DATABASE_URL", f"sqlite:///{split_dir / 'default.sqlite3'}")
    base["CLEAVE_EVENT_TRANSPORT"] = "celery"
    base.setdefault("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//")
    base.setdefault("CLEAVE_LOG_FORMAT", "plain")
    base.pop("CLEAVE_CONTEXTS", None)
    # the gateway is the one proxy in front: its X-Forwarded-For entry is the client
    base["CLEAVE_TRUSTED_PROXIES"] = "1"
    urls = {label: group.url for group in groups for label in group.contexts}
    databases = {
        label: base.get(
            f"{label.upper()}_DATABASE_URL",
            f"sqlite:///{split_dir / group.name / f'{label}.sqlite3'}",
        )
        for group in groups
        for label in group.contexts
    }
    for group in groups:
        group_env = dict(base)
        group_env["CLEAVE_CONTEXTS"] = ",".join(group.contexts)
        group_env["CLEAVE_SERVICE_NAME"] = group.name
        for label in group.contexts:
            group_env[f"{label.upper()}_DATABASE_URL"] = databases[label]
        for label, url in urls.items():
            if label not in group.contexts:
                group_env[f"{label.upper()}_SERVICE_URL"] = url
            else:
                group_env.pop(f"{label.upper()}_SERVICE_URL", None)
        group.env = group_env
    # the admin console: every context installed and every group's database,
    # every call over HTTP to the group that serves it, events over the broker
    admin_env = dict(base)
    admin_env["CLEAVE_SERVICE_NAME"] = ADMIN_CONSOLE
    admin_env["CLEAVE_EMBEDDED_SCHEDULER"] = "off"
    for label, url in urls.items():
        admin_env[f"{label.upper()}_DATABASE_URL"] = databases[label]
        admin_env[f"{label.upper()}_SERVICE_URL"] = url
    gateway_env = dict(base)
    for label, url in urls.items():
        gateway_env[f"{label.upper()}_SERVICE_URL"] = url
    gateway_env["ADMIN_SERVICE_URL"] = f"http://127.0.0.1:{admin_port}"
    return Plan(
        root=root,
        data_dir=data_dir,
        port=port,
        groups=groups,
        base_env=gateway_env,
        admin_port=admin_port,
        admin_env=admin_env,
        threads=threads,
    )


# what of the admin console's environment `manage.py --split` needs: where the
# split's data is, and how to reach the groups
_SHARED = ("CLEAVE_", "DATABASE_URL", "CELERY_", "DJANGO_", "DB_POOL_")


def env_lines(plan: Plan) -> list[str]:
    """`NAME=value` lines for `split/cleave.env` (the admin console's environment)."""
    names = sorted(
        name
        for name in plan.admin_env
        if name.startswith(_SHARED)
        or name.endswith(("_DATABASE_URL", "_SERVICE_URL", "_DB_POOL_MAX", "_DB_POOL_MIN"))
    )
    return [f"{name}={plan.admin_env[name]}" for name in names if name != "CLEAVE_SERVICE_NAME"]


def preflight(plan: Plan) -> None:
    """Everything the split needs that this process can check before starting it."""
    found = shutil.which("nginx", path=plan.base_env.get("PATH", os.defpath) + ":/usr/sbin")
    if found is not None:
        plan.nginx = found
    else:
        raise SplitError(
            "nginx is not installed, and the gateway needs it. On Debian or Ubuntu: "
            "`sudo apt-get install nginx-light` (make run-split installs it when run as root); "
            "elsewhere install nginx from your package manager."
        )
    ports = [plan.port, *(g.port for g in plan.groups), plan.admin_port]
    busy = [port for port in ports if not port_free(port)]
    if busy:
        raise SplitError(
            f"ports {busy} are in use; choose another base with PORT=... "
            f"(the split uses {plan.port} to {plan.admin_port})"
        )
    broker = plan.base_env["CELERY_BROKER_URL"]
    try:
        with Connection(broker, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:
        raise SplitError(
            f"the broker at CELERY_BROKER_URL={broker} does not answer ({exc}). Start RabbitMQ "
            "(`rabbitmq-server -detached`) or point CELERY_BROKER_URL at a running RabbitMQ or "
            "Redis (redis://127.0.0.1:6379/0)."
        ) from None


def _manage(plan: Plan, *jobs: tuple[dict[str, str], tuple[str, ...]]) -> None:
    """
    Run `manage.py <args>` with each job's environment, side by side; when one
    fails, SplitError with its output, once every one has ended.
    """
    running = [
        (
            env,
            args,
            subprocess.Popen(  # noqa: S603 - our own interpreter and manage.py
                [plan.python, "manage.py", *args],
                cwd=plan.root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            ),
        )
        for env, args in jobs
    ]
    failures = []
    for env, args, process in running:
        try:
            stdout, stderr = process.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        if process.returncode != 0:
            failures.append(
                f"manage.py {' '.join(args)} failed for "
                f"CLEAVE_CONTEXTS={env.get('CLEAVE_CONTEXTS', '(all)')}:"
                f"\n{stdout[-2000:]}\n{stderr[-4000:]}"
            )
    if failures:
        raise SplitError("\n".join(failures))


def prepare(plan: Plan, write: callable = print) -> None:
    """Directories, migrations of every group's aliases, static files, the gateway's config."""
    plan.logs.mkdir(parents=True, exist_ok=True)
    plan.gateway_dir.mkdir(parents=True, exist_ok=True)
    plan.env_file.write_text(
        "# Written by `make run-split` (manage.py run_split): the split's environment, as its\n"
        "# admin console sees it. `manage.py --split <command>` reads it.\n"
        + "\n".join(env_lines(plan))
        + "\n"
    )
    plan.env_file.chmod(0o600)
    for group in plan.groups:
        (plan.split_dir / group.name).mkdir(parents=True, exist_ok=True)
    # The admin console's environment has every context and every group's
    # database: one run there migrates every alias (the groups share `default`),
    # as seven runs of one group each did in 18 s of the split's start. The
    # static files and the gateway's configuration are written meanwhile.
    write(f"migrating {len(plan.groups)} groups ({', '.join(g.name for g in plan.groups)})")
    _manage(
        plan,
        (plan.admin_env, ("migrate_all", "--noinput")),
        (plan.groups[0].env, ("collectstatic", "--noinput", "--verbosity", "0")),
        (
            plan.base_env,
            (
                "gateway",
                "nginx",
                "--listen",
                f"127.0.0.1:{plan.port}",
                "--standalone",
                str(plan.gateway_dir),
                "--output",
                str(plan.gateway_dir / "nginx.conf"),
            ),
        ),
    )


def wait_ready(plan: Plan, *, timeout: float = 180.0, stop: threading.Event | None = None) -> bool:
    """Poll every group's /ready (and the gateway's /health) until all answer 200."""
    urls = [f"{group.url}/ready" for group in plan.groups]
    urls += [f"{plan.admin_url}/ready", f"{plan.gateway_url}/health"]
    deadline = time.monotonic() + timeout
    pending = list(urls)
    while pending and time.monotonic() < deadline:
        if stop is not None and stop.is_set():
            return False
        still = []
        for url in pending:
            try:
                ok = requests.get(url, timeout=2).status_code == 200
            except requests.RequestException:
                ok = False
            if not ok:
                still.append(url)
        pending = still
        if pending:
            time.sleep(0.5)
    return not pending


def seeded_contexts(known: list[str], *, package: str) -> list[str]:
    """The contexts that have demo data (a `demo` module), in the known order."""
    return [label for label in known if find_spec(f"{package}.{label}.demo") is not None]


def seed(plan: Plan, labels: list[str], *, write: callable = print) -> None:
    """
    The demo data of `labels`, one context at a time in that order (a
    context's demo may read an earlier one's API, as inventory reads the
    catalog's), each in its own group's process.
    """
    group_of = {label: group for group in plan.groups for label in group.contexts}
    for label in labels:
        write(f"seeding {label}")
        _manage(plan, (group_of[label].env, ("seed_demo", "--contexts", label)))


def operator_hints(plan: Plan) -> str:
    """How to sign in to the split's admin, and how a command reaches the split's data."""
    return (
        f"Admin: {plan.gateway_url}/admin/ (create an operator once: "
        "`.venv/bin/python manage.py --split createsuperuser`).\n"
        "Commands on the split's data: `.venv/bin/python manage.py --split sagas list`, "
        "`... --split events stats`, `... --split status`.\n"
        f"Mail the split sends: {plan.split_dir / 'mail'}/"
    )


def table(plan: Plan, pids: dict[str, int | None]) -> str:
    """What runs where: groups, contexts, ports, pids and log files."""
    rows = [("process", "contexts", "address", "pid", "log")]
    for group in plan.groups:
        for name in group.process_names():
            address = group.url if name.endswith(".web") else "-"
            rows.append(
                (
                    name,
                    ",".join(group.contexts),
                    address,
                    str(pids.get(name) or "-"),
                    str(plan.log_file(name)),
                )
            )
    rows.append(
        (
            f"{ADMIN_CONSOLE}.web",
            "all:/admin/",
            plan.admin_url,
            str(pids.get(f"{ADMIN_CONSOLE}.web") or "-"),
            str(plan.log_file(f"{ADMIN_CONSOLE}.web")),
        )
    )
    rows.append(
        (
            "gateway",
            "all",
            plan.gateway_url,
            str(pids.get("gateway") or "-"),
            str(plan.log_file("gateway")),
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# --- running it: no Django here (manage.py run_split hands over to this) ------------------


def save(plan: Plan, path: Path, *, seeding: list[str]) -> None:
    """The plan, as `python -m cleave_tools.deploy.split` reads it (it holds secrets: 0600)."""
    document = {
        "plan": {
            **{name: str(value) for name, value in vars(plan).items() if isinstance(value, Path)},
            "port": plan.port,
            "admin_port": plan.admin_port,
            "python": plan.python,
            "threads": plan.threads,
            "nginx": plan.nginx,
            "base_env": plan.base_env,
            "admin_env": plan.admin_env,
            "groups": [vars(group) for group in plan.groups],
        },
        "seeding": seeding,
    }
    path.write_text(json.dumps(document))
    path.chmod(0o600)


def load(path: Path) -> tuple[Plan, list[str]]:
    document = json.loads(path.read_text())
    fields = document["plan"]
    groups = [Group(**group) for group in fields.pop("groups")]
    for name in ("root", "data_dir"):
        fields[name] = Path(fields[name])
    return Plan(groups=groups, **fields), document["seeding"]


def run(plan: Plan, seeding: list[str], *, out=sys.stdout) -> int:
    """Start every process, seed and announce once they answer, stop them all at the end."""
    runner = Runner(cwd=plan.root, out=out)
    for name, argv, env in plan.commands():
        runner.add(name, argv, env, log=plan.log_file(name))
    stop = threading.Event()

    def write(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    def announce() -> None:
        if not wait_ready(plan, stop=stop):
            if not stop.is_set():
                write("The split did not become ready: see the logs above.")
            return
        try:
            seed(plan, seeding, write=write)
        except SplitError as exc:
            write(str(exc))
        write("\n" + table(plan, runner.pids()) + "\n")
        write(
            f"Cleave is split into {len(plan.groups)} groups behind {plan.gateway_url} "
            "(Ctrl-C stops everything)."
        )
        write(operator_hints(plan))

    runner.start()
    threading.Thread(target=announce, name="split-ready", daemon=True).start()
    try:
        return runner.wait()
    finally:
        stop.set()


if __name__ == "__main__":
    sys.exit(run(*load(Path(sys.argv[1]))))
