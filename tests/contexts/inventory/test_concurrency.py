"""
Races for the same stock, from real threads with their own connections.

SQLite's in-memory test databases share one cache between connections and
answer a second writer with "table is locked" instead of waiting, so these run
only where the inventory alias is a server (PostgreSQL, MariaDB):
`INVENTORY_DATABASE_URL=postgres://... pytest tests/contexts/inventory`.
"""

import threading
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from django.db import connections

from cleave.core.errors import Conflict
from cleave.testing import flows
from contexts.inventory import commands
from contexts.inventory.models import Reservation, StockItem
from tests.contexts.inventory.factories import StockItemFactory

pytestmark = [
    flows,
    pytest.mark.skipif(
        connections["inventory"].vendor == "sqlite",
        reason="needs a database server for concurrent writers (set INVENTORY_DATABASE_URL)",
    ),
]


def race(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls at the same moment in threads; return each result or exception."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            start.wait(timeout=10)
            results[index] = call()
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    return results


def stock(sku: str) -> StockItem:
    return StockItem.objects.using("inventory").get(sku=sku)


def reserve(*lines: tuple[str, int], key: str | None = None) -> Callable[[], Any]:
    return lambda: commands.reservation_create(
        order_id=uuid.UUID(int=1) if key else uuid.uuid4(),
        lines=[{"sku": sku, "quantity": quantity} for sku, quantity in lines],
        idempotency_key=key,
    )


def test_racing_checkouts_never_reserve_more_than_is_on_hand():
    StockItemFactory(sku="A", on_hand=5)

    results = race(*[reserve(("A", 1)) for _ in range(12)])

    won = [r for r in results if isinstance(r, tuple)]
    lost = [r for r in results if isinstance(r, commands.OutOfStock)]
    assert (len(won), len(lost)) == (5, 7), results
    assert (stock("A").reserved, stock("A").available) == (5, 0)
    assert Reservation.objects.using("inventory").count() == 5


def test_multi_line_checkouts_in_opposite_orders_do_not_deadlock():
    StockItemFactory(sku="A", on_hand=6)
    StockItemFactory(sku="B", on_hand=6)

    results = race(
        *[reserve(("A", 1), ("B", 1)) if n % 2 else reserve(("B", 1), ("A", 1)) for n in range(8)]
    )

    # a deadlock would surface here as a database error instead of a refusal
    assert all(isinstance(r, tuple | commands.OutOfStock) for r in results), results
    won = sum(isinstance(r, tuple) for r in results)
    assert won == 6
    assert (stock("A").reserved, stock("B").reserved) == (6, 6)


def test_racing_requests_with_one_idempotency_key_reserve_once():
    StockItemFactory(sku="A", on_hand=10)

    results = race(*[reserve(("A", 2), key="same-key") for _ in range(6)])

    assert all(isinstance(r, tuple) for r in results), results
    assert len({reservation.id for reservation, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert stock("A").reserved == 2


def test_a_racing_commit_and_release_let_exactly_one_win():
    StockItemFactory(sku="A", on_hand=10)
    reservation, _ = commands.reservation_create(
        order_id=uuid.uuid4(), lines=[{"sku": "A", "quantity": 3}]
    )

    results = race(
        lambda: commands.reservation_commit(reservation_id=reservation.id),
        lambda: commands.reservation_release(reservation_id=reservation.id),
    )

    assert sum(isinstance(r, Conflict) for r in results) == 1, results
    final = Reservation.objects.using("inventory").get(pk=reservation.id).status
    item = stock("A")
    if final == Reservation.Status.COMMITTED:
        assert (item.on_hand, item.reserved) == (7, 0)
    else:
        assert (item.on_hand, item.reserved) == (10, 0)
