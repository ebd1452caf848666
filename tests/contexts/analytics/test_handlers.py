import uuid
from decimal import Decimal

from cleave.messaging.inbox import HandlerOutcome
from cleave.testing import flows
from contexts.analytics import queries
from contexts.analytics.models import Counter, ProductSales
from contexts.users.commands import customer_register
from tests.contexts.analytics.factories import (
    deliver,
    order_cancelled,
    order_confirmed,
    order_line,
    user_created,
)

pytestmark = flows

CUSTOMER = str(uuid.uuid4())


def counter(name: str) -> Decimal:
    row = Counter.objects.using("analytics").filter(name=name).first()
    return row.value if row else Decimal(0)


def test_a_registration_counts_a_user():
    customer_register(email="ada@example.com", password="correct horse", name="Ada")
    customer_register(email="grace@example.com", password="correct horse", name="Grace")

    assert queries.summary()["users_registered"] == 2


def test_a_confirmed_order_counts_the_order_its_revenue_and_its_products():
    tee = order_line(sku="TEE-1", unit_price="19.90", quantity=2)
    mug = order_line(sku="MUG-1", unit_price="8.50", quantity=1)
    deliver(order_confirmed(CUSTOMER, lines=[tee, mug]))
    deliver(order_confirmed(CUSTOMER, lines=[tee]))

    summary = queries.summary()
    assert summary["orders_confirmed"] == 2
    assert summary["revenue"] == "88.10"
    assert summary["currency"] == "EUR"
    assert summary["top_products"] == [
        {"product_id": tee["product_id"], "sku": "TEE-1", "quantity": 4, "revenue": "79.60"},
        {"product_id": mug["product_id"], "sku": "MUG-1", "quantity": 1, "revenue": "8.50"},
    ]


def test_a_cancelled_order_is_counted():
    deliver(order_cancelled(CUSTOMER, reason="out_of_stock"))

    assert queries.summary()["orders_cancelled"] == 1
    assert queries.summary()["revenue"] == "0.00"


def test_redelivered_events_are_counted_once():
    confirmed = order_confirmed(CUSTOMER)
    registered = user_created()

    for event in (confirmed, registered):
        assert deliver(event) == HandlerOutcome.APPLIED
        assert deliver(event) == HandlerOutcome.DUPLICATE

    assert counter(Counter.ORDERS_CONFIRMED) == 1
    assert counter(Counter.USERS_REGISTERED) == 1
    assert counter(Counter.REVENUE) == Decimal(confirmed.data["total"])
    assert ProductSales.objects.using("analytics").get().quantity == 2


def test_revenue_in_another_currency_is_not_mixed_into_the_shop_currency():
    deliver(order_confirmed(CUSTOMER, currency="USD"))

    summary = queries.summary()
    assert summary["orders_confirmed"] == 1
    assert summary["revenue"] == "0.00"
    assert summary["top_products"][0]["quantity"] == 2
    assert summary["top_products"][0]["revenue"] == "0.00"
