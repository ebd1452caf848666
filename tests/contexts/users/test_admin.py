"""The users admin: a customer's page links to the customer's orders."""

from __future__ import annotations

from decimal import Decimal

from cleave.testing import unit
from contexts.orders.models import Order
from tests.contexts.users.factories import CustomerFactory
from tests.support.links import follow

pytestmark = unit


def order_of(customer) -> Order:
    return Order.objects.create(
        customer_id=customer.id, total=Decimal("8.50"), currency="EUR", payment_method="tok_visa"
    )


def test_the_customer_page_links_to_the_customers_orders(admin_client):
    ada, bob = CustomerFactory(), CustomerFactory()
    hers, his = order_of(ada), order_of(bob)

    page = admin_client.get(f"/admin/users/customer/{ada.id}/change/").content.decode()
    orders = follow(admin_client, page, "The customer's orders")

    assert str(hers.id) in orders
    assert str(his.id) not in orders
