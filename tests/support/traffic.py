"""
Checkouts running all along a fault, and what must hold once it is over.

`Traffic` is two buyers checking out one unit at a time until stopped, one
with a card that is approved and one with a card that is declined. A strict
buyer counts every failure as an error (a fault between hosts must never
reach the customer); a patient one, as a client of the API should, waits as
`Retry-After` says on a 503 and sends the same request again (a checkout with
the same `Idempotency-Key`), and the 503s are kept with their times (a move
pauses a context's writes on purpose).

`check_invariants()` then asserts, whatever the fault: no order stays
pending, none is charged twice, each ends as its payment did, the stock is
what was sold, analytics and notifications counted each ending once, and
nothing was dead-lettered.

A system here is anything with `url`, `groups` (catalog and inventory's
URLs) and `sql(alias, query)`: a split (tests.support.split) or a monolith
whose aliases may have moved (tests.integration.test_move).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from typing import Any

import requests

from tests.support.live import wait_until
from tests.support.split import Customer, available

APPROVED, DECLINED = "tok_visa", "tok_chargeDeclined"


class Traffic:
    """Two buyers checking out one unit at a time until stopped: approved and declined cards."""

    def __init__(self, split: Any, *, patient: bool = False) -> None:
        self.split = split
        self.patient = patient
        self.buyers = {APPROVED: Customer(split), DECLINED: Customer(split)}
        products = self.buyers[APPROVED].product
        self.products = [products(index) for index in range(3)]
        self.orders: list[tuple[str, str, str]] = []  # (order id, card, sku)
        self.errors: list[str] = []
        self.unavailable: list[tuple[float, str]] = []  # (time, path) of each 503
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._buy, args=(card,), daemon=True) for card in self.buyers
        ]

    def _send(self, buyer: Customer, path: str, body: dict, headers: dict) -> requests.Response:
        while True:
            response = buyer.session.post(
                f"{buyer.base}{path}", json=body, headers=headers, timeout=30
            )
            if response.status_code != 503 or not self.patient:
                return response
            self.unavailable.append((time.monotonic(), path))
            time.sleep(min(float(response.headers.get("Retry-After", "1")), 1.0) / 4)

    def _buy(self, card: str) -> None:
        buyer = self.buyers[card]
        turn = 0
        while not self.stop.is_set():
            product = self.products[turn % len(self.products)]
            turn += 1
            try:
                added = self._send(
                    buyer,
                    "/api/orders/cart/items",
                    {"product_id": product["id"], "quantity": 1},
                    {},
                )
                if added.status_code != 201:
                    self.errors.append(f"cart: {added.status_code} {added.text[:200]}")
                    continue
                key = {"Idempotency-Key": uuid.uuid4().hex} if self.patient else {}
                placed = self._send(buyer, "/api/orders/checkout", {"payment_method": card}, key)
                if placed.status_code != 202:
                    self.errors.append(f"checkout: {placed.status_code} {placed.text[:200]}")
                    continue
                self.orders.append((placed.json()["order_id"], card, product["sku"]))
            except Exception as exc:  # every failure is reported by the test
                self.errors.append(f"{card}: {exc!r}")
            time.sleep(0.3)

    def longest_pause(self, path: str) -> float:
        """The longest run of 503s on `path` (seconds from the first to the last of a run)."""
        times = sorted(t for t, p in self.unavailable if p == path)
        longest, start = 0.0, None
        for previous, now in zip([None, *times], times, strict=False):
            if previous is None or now - previous > 2.0:
                start = now
            longest = max(longest, now - start)
        return longest

    def __enter__(self) -> Traffic:
        self.stock = {p["sku"]: available(self.split, p["sku"]) for p in self.products}
        self.counters = counters(self.split)
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def counters(split: Any) -> dict[str, float]:
    rows = split.sql("analytics", "SELECT name, value FROM analytics_counter")
    notices = split.sql(
        "notifications", "SELECT kind, count(*) FROM notifications_notification GROUP BY kind"
    )
    return {**{name: float(value) for name, value in rows}, **{k: n for k, n in notices}}


def settled(traffic: Traffic, *, timeout: float = 120.0) -> dict[str, dict]:
    """Every order of the traffic at its end (none stranded), by id."""
    buyers = traffic.buyers
    ends = {}
    for order_id, card, _sku in traffic.orders:
        ends[order_id] = buyers[card].final_order(order_id, timeout=timeout)
    return ends


def _hex(value: Any) -> str:
    return str(value).replace("-", "")  # a UUID column (PostgreSQL) or its 32 digits


def check_invariants(split: Any, traffic: Traffic, ends: dict[str, dict]) -> Counter:
    assert not traffic.errors, traffic.errors
    outcome = Counter(order["status"] for order in ends.values())
    # no double charge, and each order ends as its payment did
    payments = split.sql("payments", "SELECT order_id, status FROM payments_payment")
    per_order = Counter(_hex(order_id) for order_id, _ in payments)
    assert max(per_order.values(), default=0) <= 1, per_order.most_common(3)
    paid = {_hex(order_id): status for order_id, status in payments}
    for order_id, order in ends.items():
        payment = paid.get(_hex(order_id))
        if order["status"] == "confirmed":
            assert payment == "captured", (order, payment)
        else:
            assert payment in (None, "declined", "failed", "refunded"), (order, payment)
    # the stock is what was sold
    sold = Counter(
        sku for order_id, _, sku in traffic.orders if ends[order_id]["status"] == "confirmed"
    )
    for sku, before in traffic.stock.items():
        assert available(split, sku) == before - sold[sku], sku
    # every confirmation and cancellation reached analytics and notifications once
    confirmed, cancelled = outcome["confirmed"], outcome["cancelled"]

    def reached() -> bool:
        now, before = counters(split), traffic.counters
        return (
            now.get("orders_confirmed", 0) - before.get("orders_confirmed", 0) == confirmed
            and now.get("orders_cancelled", 0) - before.get("orders_cancelled", 0) == cancelled
            and now.get("order_confirmed", 0) - before.get("order_confirmed", 0) == confirmed
            and now.get("order_cancelled", 0) - before.get("order_cancelled", 0) == cancelled
        )

    wait_until(reached, timeout=60, every=0.5, what="analytics and notifications to catch up")
    time.sleep(1)
    assert reached(), (counters(split), traffic.counters, outcome)  # and not more than once
    for alias in ("analytics", "notifications", "payments", "orders"):
        dead = split.sql(alias, "SELECT event_type, error FROM cleave_deadletter")
        assert list(dead) == [], (alias, dead)
    return outcome
