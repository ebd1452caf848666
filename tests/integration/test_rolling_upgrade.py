"""
A major version of an event rolls out one process group at a time, over RabbitMQ.

Two groups run different releases of the same contexts (tests/support/rolling):
the publisher's (users, catalog, inventory, orders, payments: web server and
worker) and the consumers' (analytics and notifications: a worker). Release 1
publishes and reads `order.placed` v1; release 2 publishes v2 with a
downcaster to v1, and reads v2 with an upcaster from v1. Each upgrade order is
played from the mixed state (one group upgraded): checkouts, then the other
group stopped and started on release 2 (with the consumers down, a checkout
meanwhile waits in their queues), then one more checkout. Every order's
`order.placed` must be read once by each consumer, in the consumer's shape,
and the shop's own reactions (confirmation counted and mailed) must follow,
with no dead letter anywhere.
"""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from tests.integration.conftest import live_secrets, make_live, migrated_template  # noqa: F401
from tests.support.live import ROOT, LiveSystem, Process, free_port, gunicorn_args, wait_until
from tests.support.story import _checkout, eventually

pytestmark = [pytest.mark.services]

PUBLISHERS = ["users", "catalog", "inventory", "orders", "payments"]
CONSUMERS = ["analytics", "notifications"]
PACKAGE = "rolling_release2"
ALIASES = [*PUBLISHERS, *CONSUMERS]


def release2_contracts(root: Path) -> Path:
    """Release 2's contracts package: a copy of `contracts/` with the v2 orders contract."""
    packages = root / "packages"
    target = packages / PACKAGE
    shutil.copytree(ROOT / "contracts", target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "tests" / "support" / "rolling" / "orders_v2.py", target / "orders.py")
    return packages


class Groups:
    """The publisher's group and the consumers', each started on a release."""

    def __init__(self, live: LiveSystem, packages: Path) -> None:
        self.live = live
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.base = {
            **live.env,
            "DJANGO_SETTINGS_MODULE": "tests.support.rolling.settings",
            "PYTHONPATH": f"{packages}:{ROOT}",
            "CLEAVE_SAGA_RUNNER": "inprocess",
        }
        self.running: dict[str, list[Process]] = {}

    def env(self, release: int, contexts: list[str] | None = None) -> dict[str, str]:
        env = {**self.base, "CLEAVE_TEST_RELEASE": str(release)}
        if release == 2:
            env["CLEAVE_TEST_CONTRACTS_PACKAGE"] = PACKAGE
        if contexts:
            env["CLEAVE_CONTEXTS"] = ",".join(contexts)
        return env

    def start(self, group: str, release: int) -> None:
        live = self.live
        if group == "consumers":
            env = self.env(release, CONSUMERS)
            self.running[group] = [
                live.start_worker(f"consumers-r{release}", contexts=CONSUMERS, env=env)
            ]
            return
        env = self.env(release, PUBLISHERS)
        web = live._spawn(
            Process(
                f"web-r{release}",
                gunicorn_args(self.port),
                env,
                live.logs / f"web-r{release}.log",
            )
        )
        worker = live.start_worker(f"publishers-r{release}", contexts=PUBLISHERS, env=env)

        def ready():
            if not web.alive():
                raise AssertionError(f"web exited:\n{web.output()[-4000:]}")
            try:
                return requests.get(f"{self.url}/ready", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(ready, timeout=60, what="the publishers' web server")
        self.running[group] = [web, worker]

    def start_both(self, publishers: int, consumers: int) -> None:
        with ThreadPoolExecutor(2) as pool:
            for done in [
                pool.submit(self.start, "publishers", publishers),
                pool.submit(self.start, "consumers", consumers),
            ]:
                done.result()

    def stop(self, group: str) -> None:
        for process in self.running.pop(group):
            process.kill()


def _customer(base: str) -> requests.Session:
    shop = requests.Session()
    email = f"roll-{uuid.uuid4().hex[:8]}@example.com"
    made = shop.post(
        f"{base}/api/users/", json={"email": email, "password": "a good secret", "name": "Roll"}
    )
    assert made.status_code == 201, made.text
    secret = {"email": email, "password": "a good secret"}
    tokens = shop.post(f"{base}/api/users/token", json=secret)
    shop.headers["Authorization"] = f"Bearer {tokens.json()['access']}"
    return shop


def _assert_counted(live: LiveSystem, name: str, expected: int) -> None:
    value = live.scalar("analytics", "SELECT value FROM analytics_counter WHERE name = ?", (name,))
    assert value is not None and Decimal(str(value)) == expected, (name, value)


def _buy(shop: requests.Session, base: str) -> dict:
    product = requests.get(f"{base}/api/catalog/products", timeout=10).json()["results"][0]
    order = _checkout(shop, base, [(product, 1)], "tok_visa")
    assert order["status"] == "confirmed", order
    return order


@pytest.mark.parametrize("first", ["publishers", "consumers"])
def test_an_event_version_rolls_out_one_group_at_a_time_without_a_dead_letter(
    first,
    tmp_path,
    migrated_template,  # noqa: F811
    live_secrets,  # noqa: F811
):
    manager, live = make_live(tmp_path, "rabbitmq", migrated_template, live_secrets)
    try:
        groups = Groups(live, release2_contracts(tmp_path))
        # release 2's lock records v2 beside v1, and who reads which (the lock's own check)
        locked = live.manage("contracts", "lock", env=groups.env(2))
        assert "order.placed v2: a new version" in locked.stdout, locked.stdout
        live.manage("seed_demo", env=groups.env(1))

        # the mixed state: `first` is on release 2, the other group still on release 1
        groups.start_both(
            publishers=2 if first == "publishers" else 1,
            consumers=2 if first == "consumers" else 1,
        )
        shop = _customer(groups.url)
        orders = [_buy(shop, groups.url) for _ in range(2)]
        eventually(
            lambda: _assert_counted(live, "rolling:placed", 2),
            timeout=60,
            what="the mixed state's orders read by the consumers",
        )

        # the other group upgrades; with the consumers down meanwhile, events wait in their queues
        later = "consumers" if first == "publishers" else "publishers"
        groups.stop(later)
        if later == "consumers":
            orders.append(_buy(shop, groups.url))
        groups.start(later, 2)
        orders.append(_buy(shop, groups.url))

        # every order was read once by each consumer, in its shape
        totals = sum(Decimal(order["total"]) for order in orders)

        def counted():
            counters = {
                name: Decimal(str(value))
                for name, value in live.sql(
                    "analytics", "SELECT name, value FROM analytics_counter WHERE name LIKE 'roll%'"
                )
            }
            assert counters.get("rolling:placed") == len(orders), counters
            assert counters.get("rolling:total") == totals, counters
            confirmed = live.scalar(
                "analytics", "SELECT value FROM analytics_counter WHERE name = 'orders_confirmed'"
            )
            assert int(Decimal(str(confirmed or 0))) == len(orders)
            return counters

        counters = eventually(counted, timeout=60, what="analytics counting every order")
        # release 1's consumers read v1 (a v2 publisher's downcast), release 2's read v2
        read_v1 = counters.get("rolling:read-v1", 0)
        assert read_v1 == (2 if first == "publishers" else 0), counters
        assert counters.get("rolling:read-v2", 0) == len(orders) - read_v1, counters

        def notified():
            rows = live.sql(
                "notifications",
                "SELECT kind, subject FROM notifications_notification "
                "WHERE kind IN ('order_received', 'order_confirmed')",
            )
            for order in orders:
                amount = f"{order['total']} {order['currency']}"
                expected = f"We received your order {order['id']}: {amount}"
                assert ("order_received", expected) in rows, (expected, rows)
            assert sum(kind == "order_received" for kind, _ in rows) == len(orders), rows
            assert sum(kind == "order_confirmed" for kind, _ in rows) == len(orders), rows

        eventually(notified, timeout=30, what="one notification per order and kind")

        # what orders sent: v1 from release 1, v2 (with v1 inside) from release 2
        sent = sorted(
            version
            for (version,) in live.sql(
                "orders", "SELECT version FROM cleave_outboxevent WHERE type = 'order.placed'"
            )
        )
        assert sent == ([1, 1, 2] if first == "consumers" else [2, 2, 2, 2]), sent
        for alias in ALIASES:
            assert live.dead_letters(alias) == [], alias
            doubled = live.sql(
                alias,
                "SELECT event_id, handler FROM cleave_inboxrecord "
                "GROUP BY event_id, handler HAVING count(*) > 1",
            )
            assert doubled == [], (alias, doubled)
    finally:
        manager.__exit__(None, None, None)
