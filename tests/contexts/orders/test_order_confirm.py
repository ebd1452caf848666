"""`order_confirm()`: the order as placed is read before its transaction, and returned as stored."""

from decimal import Decimal
from uuid import uuid4

import pytest
from django.db import connections

from cleave.core.errors import Conflict, NotFound
from cleave.testing import published, unit
from contexts.orders import commands
from contexts.orders.models import Order, OrderLine

pytestmark = unit


def _placed_order(**fields) -> Order:
    order = Order.objects.using("orders").create(
        customer_id=uuid4(),
        total=Decimal("29.70"),
        currency="EUR",
        payment_method="tok_visa",
        **fields,
    )
    for sku, quantity in (("A-1", 1), ("B-2", 2)):
        OrderLine.objects.using("orders").create(
            order=order,
            product_id=uuid4(),
            sku=sku,
            name=sku,
            unit_price=Decimal("9.90"),
            quantity=quantity,
            line_total=Decimal("9.90") * quantity,
        )
    return order


def test_the_confirmed_order_is_returned_as_stored_and_announced_with_its_lines():
    order = _placed_order()
    payment_id, reservation_id = uuid4(), uuid4()
    placed = commands.order_placed(order_id=order.id)

    confirmed = commands.order_confirm(
        order_id=order.id, payment_id=payment_id, reservation_id=reservation_id, placed=placed
    )

    stored = Order.objects.using("orders").get(pk=order.id)
    for field in Order._meta.concrete_fields:
        assert getattr(confirmed, field.attname) == getattr(stored, field.attname), field.name
    assert stored.status == Order.Status.CONFIRMED
    assert stored.payment_id == payment_id
    [event] = published("orders", "order.confirmed")
    assert [line["sku"] for line in event.data["lines"]] == ["A-1", "B-2"]
    assert event.data["total"] == "29.70"


def test_the_transaction_only_decides_and_publishes_when_the_order_was_read_beforehand():
    order = _placed_order()
    placed = commands.order_placed(order_id=order.id)
    connection = connections["orders"]
    statements: list[str] = []

    def record(execute, sql, params, many, context):
        statements.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        commands.order_confirm(
            order_id=order.id, payment_id=uuid4(), reservation_id=uuid4(), placed=placed
        )

    assert not [sql for sql in statements if sql.lstrip().upper().startswith("SELECT")]


def test_confirming_again_changes_nothing_and_a_cancelled_order_cannot_be_confirmed():
    order = _placed_order()
    payment_id, reservation_id = uuid4(), uuid4()
    commands.order_confirm(order_id=order.id, payment_id=payment_id, reservation_id=reservation_id)

    again = commands.order_confirm(
        order_id=order.id,
        payment_id=uuid4(),
        reservation_id=uuid4(),
        placed=commands.order_placed(order_id=order.id),
    )

    assert again.payment_id == payment_id
    assert len(published("orders", "order.confirmed")) == 1
    cancelled = _placed_order(status=Order.Status.CANCELLED)
    with pytest.raises(Conflict):
        commands.order_confirm(order_id=cancelled.id, payment_id=uuid4(), reservation_id=uuid4())
    with pytest.raises(NotFound):
        commands.order_placed(order_id=uuid4())
