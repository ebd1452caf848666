"""
A split installation in subprocesses: each process group a gunicorn web server
serving only its contexts (`CLEAVE_CONTEXTS`), reaching the others over HTTP
through `<LABEL>_SERVICE_URL`. Every group shares one data directory, where
each context's SQLite file is opened only by the group that serves it.

Groups can be stopped, hung (SIGSTOP: the port still accepts connections, but
nothing answers) and started again on the same port, to test what callers see.
Events cross groups (payments subscribes to users' `user.blocked` and
`user.deleted`), so the installation runs the Celery transport: each group
whose contexts subscribe to something has a Celery worker for their queues.
Sagas stay in the web processes (`CLEAVE_SAGA_RUNNER=inprocess`), so a
story's timing is the web server's.

With `hosts` (tests.support.hosts), each group runs on a host of its own (a
network namespace at its own address), so the network between groups, or
between a group and the broker, can be cut while every process runs.
"""

from __future__ import annotations

import contextlib
import os
import signal
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

from cleave.messaging.subscriptions import consumed_by
from tests.support.hosts import Hosts
from tests.support.live import LiveSystem, Process, free_port, gunicorn_args, wait_until

# Shorter waits for the tests of a split (the defaults are 0.5 s to 30 s, 30 s, 300 s).
FAST = {
    "CLEAVE_SAGA_WAIT_BASE": "0.2",
    "CLEAVE_SAGA_WAIT_MAX": "1",
    "CLEAVE_BREAKER_RESET_TIMEOUT": "2",
    "CLEAVE_DISCOVERY_PROBE_INTERVAL": "0.5",
    "CLEAVE_EMBEDDED_SCHEDULER": "on",
    # events go between groups over RabbitMQ; sagas stay in the web processes
    "CLEAVE_SAGA_RUNNER": "inprocess",
}

# The group that talks to the customer, and the three it calls over HTTP.
GROUPS = {
    "shop": ["users", "orders", "notifications", "analytics"],
    "catalog": ["catalog"],
    "inventory": ["inventory"],
    "payments": ["payments"],
}


class Group:
    """One process group: a gunicorn server for some contexts, on fixed ports."""

    def __init__(self, system: SplitSystem, name: str, contexts: list[str], instances: int) -> None:
        self.system = system
        self.name = name
        self.contexts = contexts
        self.ports = [free_port() for _ in range(instances)]
        self.processes: dict[int, Process] = {}

    @property
    def address(self) -> str:
        hosts = self.system.hosts
        return hosts.address(self.name) if hosts else "127.0.0.1"

    @property
    def urls(self) -> list[str]:
        return [f"http://{self.address}:{port}" for port in self.ports]

    def wrap(self, argv: list[str]) -> list[str]:
        """`argv` run on this group's host (as it is without hosts)."""
        hosts = self.system.hosts
        return hosts.wrap(self.name, argv) if hosts else argv

    def start(self, instance: int = 0) -> Process:
        args = self.wrap(gunicorn_args(self.ports[instance], host=self.address))
        env = {**self.system.env, "CLEAVE_CONTEXTS": ",".join(self.contexts)}
        name = f"{self.name}-{instance}"
        process = Process(name, args, env, self.system.logs / f"{name}.log")
        self.system.processes.append(process)
        self.processes[instance] = process
        return process

    def wait_ready(self, instance: int = 0, timeout: float = 60.0) -> None:
        url, process = self.urls[instance], self.processes[instance]

        def ready():
            if not process.alive():
                raise AssertionError(f"{process.name} exited:\n{process.output()[-4000:]}")
            try:
                return requests.get(f"{url}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=timeout, what=f"{process.name} to be ready")

    def stop(self, instance: int = 0) -> None:
        """Stop it like a crash: the port refuses connections from now on."""
        self.processes[instance].kill()

    def hang(self, instance: int = 0) -> None:
        """SIGSTOP the whole process group: connections are accepted, never answered."""
        os.killpg(self.processes[instance].pid, signal.SIGSTOP)

    def resume(self, instance: int = 0) -> None:
        os.killpg(self.processes[instance].pid, signal.SIGCONT)


class SplitSystem:
    """Several groups over one data directory; the shop group is the customers' base URL."""

    def __init__(
        self,
        live: LiveSystem,
        *,
        instances: dict[str, int] | None = None,
        hosts: Hosts | None = None,
    ) -> None:
        self.live = live
        self.hosts = hosts
        self.logs = live.logs
        self.processes = live.processes
        self.groups = {
            name: Group(self, name, contexts, (instances or {}).get(name, 1))
            for name, contexts in GROUPS.items()
        }
        self.env = dict(live.env)
        for group in self.groups.values():
            if group.name == "shop":
                continue
            for label in group.contexts:
                self.env[f"{label.upper()}_SERVICE_URL"] = ",".join(group.urls)
        if hosts:
            # the broker as the hosts reach it: through the gateway's address
            broker = urlsplit(self.env["CELERY_BROKER_URL"])
            netloc = broker.netloc.replace(broker.hostname or "", hosts.gateway)
            self.env["CELERY_BROKER_URL"] = urlunsplit(broker._replace(netloc=netloc))
            addresses = [hosts.address(name) for name in self.groups]
            self.env["DJANGO_ALLOWED_HOSTS"] = ",".join(["localhost", "127.0.0.1", *addresses])

    @property
    def url(self) -> str:
        return self.groups["shop"].urls[0]

    def start(self) -> None:
        # start every group at once (each takes seconds to import Django), then wait
        for group in self.groups.values():
            for instance in range(len(group.ports)):
                group.start(instance)
        for group in self.groups.values():
            if any(consumed_by(label) for label in group.contexts):
                self.live.start_worker(
                    f"{group.name}-worker",
                    contexts=group.contexts,
                    env={**self.env, "CLEAVE_CONTEXTS": ",".join(group.contexts)},
                    wrap=group.wrap,
                )
        for group in self.groups.values():
            for instance in range(len(group.ports)):
                group.wait_ready(instance)

    def resume_all(self) -> None:
        """Let every stopped process go on, so that nothing is left behind SIGSTOPped."""
        for process in self.processes:
            if process.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGCONT)

    def sql(self, alias: str, query: str, params: tuple = ()):
        return self.live.sql(alias, query, params)


def log_of(system: SplitSystem, group: str, instance: int = 0) -> str:
    return Path(system.groups[group].processes[instance].log).read_text(errors="replace")


class Customer:
    """A customer of the split shop, over HTTP."""

    def __init__(self, split: SplitSystem) -> None:
        self.split = split
        self.base = split.url
        self.session = requests.Session()
        email = f"c-{uuid.uuid4().hex[:10]}@example.com"
        response = self.session.post(
            f"{self.base}/api/users/",
            json={"email": email, "password": "correct horse", "name": "C"},
            timeout=10,
        )
        assert response.status_code == 201, response.text
        tokens = self.session.post(
            f"{self.base}/api/users/token",
            json={"email": email, "password": "correct horse"},
            timeout=10,
        ).json()
        self.session.headers["Authorization"] = f"Bearer {tokens['access']}"

    def product(self, index: int = 0) -> dict:
        catalog = self.split.groups["catalog"].urls[0]
        return requests.get(f"{catalog}/api/catalog/products", timeout=10).json()["results"][index]

    def add(self, product: dict, quantity: int = 1) -> requests.Response:
        return self.session.post(
            f"{self.base}/api/orders/cart/items",
            json={"product_id": product["id"], "quantity": quantity},
            timeout=30,
        )

    def checkout(self, payment_method: str = "tok_visa") -> str:
        response = self.session.post(
            f"{self.base}/api/orders/checkout", json={"payment_method": payment_method}, timeout=30
        )
        assert response.status_code == 202, response.text
        return response.json()["order_id"]

    def order(self, order_id: str) -> dict:
        return self.session.get(f"{self.base}/api/orders/{order_id}", timeout=10).json()

    def final_order(self, order_id: str, timeout: float = 60.0) -> dict:
        def final():
            order = self.order(order_id)
            return order if order["status"] != "pending" else None

        return wait_until(final, timeout=timeout, every=0.2, what=f"order {order_id} to end")


def available(split: SplitSystem, sku: str) -> int:
    inventory = split.groups["inventory"].urls[0]
    return requests.get(f"{inventory}/api/inventory/stock/{sku}", timeout=10).json()["available"]
