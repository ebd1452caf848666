"""
Checkouts racing with one `Idempotency-Key`, from real threads with their own
connections: the probe sent four at once and got one 202 and three 400
`empty-cart`. Every racer must get the first request's order; one order, one
charge.

SQLite's in-memory test databases answer a second writer with "table is
locked" instead of waiting, so this runs only where the orders alias is a
server: `ORDERS_DATABASE_URL=postgres://... pytest tests/contexts/orders`
(tests/contexts/orders/test_checkout.py replays the same race in one thread).
"""

import threading
from typing import Any

import pytest
from django.db import connections

from cleave.testing import flows
from contexts.orders import commands
from contexts.orders.models import Order
from contexts.payments.models import Payment
from tests.contexts.orders.conftest import add

pytestmark = [
    flows,
    pytest.mark.skipif(
        connections["orders"].vendor == "sqlite",
        reason="needs a database server for concurrent writers (set ORDERS_DATABASE_URL)",
    ),
]


def test_racers_with_one_key_all_get_the_first_order(api, shop):
    add(api, shop, shop.tee, 1)
    results: list[Any] = [None] * 4
    start = threading.Barrier(len(results))

    def racer(index: int) -> None:
        try:
            start.wait(timeout=10)
            order, _created = commands.order_checkout(
                customer_id=shop.customer.id, payment_method="tok_visa", idempotency_key="race"
            )
            results[index] = order.id
        except Exception as exc:
            results[index] = exc
        finally:
            connections.close_all()

    threads = [threading.Thread(target=racer, args=(index,)) for index in range(len(results))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not any(thread.is_alive() for thread in threads), "a racer hung"
    assert len(set(results)) == 1 and not isinstance(results[0], Exception), results
    assert Order.objects.using("orders").count() == 1
    assert Payment.objects.using("payments").count() == 1
