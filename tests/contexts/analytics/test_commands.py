import uuid
from decimal import Decimal

from cleave.core.registry import get_context
from cleave.messaging import replay
from cleave.messaging.models import InboxRecord
from cleave.testing import flows, unit
from contexts.analytics import commands, queries
from contexts.analytics.models import Counter, ProductSales
from tests.contexts.analytics.factories import (
    CounterFactory,
    ProductSalesFactory,
    deliver,
    order_confirmed,
)

CUSTOMER = str(uuid.uuid4())


@unit
def test_an_empty_read_model_summarises_to_zeros():
    assert queries.summary() == {
        "users_registered": 0,
        "users_verified": 0,
        "users_deleted": 0,
        "orders_confirmed": 0,
        "orders_cancelled": 0,
        "revenue": "0.00",
        "currency": "EUR",
        "top_products": [],
    }


@unit
def test_counters_add_up():
    commands.counter_add(name=Counter.REVENUE, amount=Decimal("10.10"))
    commands.counter_add(name=Counter.REVENUE, amount=Decimal("0.30"))
    commands.counter_add(name=Counter.ORDERS_CANCELLED)

    summary = queries.summary()
    assert summary["revenue"] == "10.40"
    assert summary["orders_cancelled"] == 1


@unit
def test_the_top_products_are_the_ten_best_sellers_by_quantity_then_revenue():
    for n in range(12):
        ProductSalesFactory(sku=f"LOW-{n:02}", quantity=1, revenue=Decimal("1.00"))
    cheap = ProductSalesFactory(sku="CHEAP", quantity=5, revenue=Decimal("5.00"))
    dear = ProductSalesFactory(sku="DEAR", quantity=5, revenue=Decimal("50.00"))
    most = ProductSalesFactory(sku="MOST", quantity=9, revenue=Decimal("9.00"))

    top = queries.summary()["top_products"]

    assert len(top) == 10
    assert [row["product_id"] for row in top[:3]] == [
        str(most.product_id),
        str(dear.product_id),
        str(cheap.product_id),
    ]
    assert top[1] == {
        "product_id": str(dear.product_id),
        "sku": "DEAR",
        "quantity": 5,
        "revenue": "50.00",
    }


@unit
def test_a_product_keeps_its_latest_sku():
    sales = ProductSalesFactory(sku="OLD", quantity=1)

    commands.product_sales_add(
        product_id=sales.product_id, sku="NEW", quantity=2, revenue=Decimal("4.00")
    )

    sales.refresh_from_db()
    assert (sales.sku, sales.quantity, sales.revenue) == ("NEW", 3, Decimal("14.00"))


@flows
def test_reset_empties_the_read_model_so_a_replay_rebuilds_it():
    CounterFactory(name=Counter.USERS_REGISTERED, value=Decimal(3))
    event = order_confirmed(CUSTOMER)
    deliver(event)

    replay.reset_read_model(get_context("analytics"))  # what `events replay --reset` does

    assert not Counter.objects.using("analytics").exists()
    assert not ProductSales.objects.using("analytics").exists()
    assert not InboxRecord.objects.using("analytics").exists()
    deliver(event)  # the replay
    summary = queries.summary()
    assert summary["orders_confirmed"] == 1
    assert summary["users_registered"] == 0
    assert summary["revenue"] == event.data["total"]
