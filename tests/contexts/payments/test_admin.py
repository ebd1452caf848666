"""The payments admin: a payment links to its order and its customer."""

from __future__ import annotations

from cleave.testing import unit
from contexts.orders.models import Order
from tests.contexts.payments.factories import PaymentFactory
from tests.contexts.users.factories import CustomerFactory
from tests.support.links import follow

pytestmark = unit

PAYMENTS = "/admin/payments/payment/"


def test_the_payment_page_links_to_its_order_and_customer(admin_client):
    customer = CustomerFactory(email="ada@example.com")
    payment = PaymentFactory(customer_id=customer.id)
    order = Order.objects.create(
        id=payment.order_id,
        customer_id=customer.id,
        total=payment.amount,
        payment_method=payment.method,
        payment_id=payment.id,
    )

    page = admin_client.get(f"{PAYMENTS}{payment.id}/change/").content.decode()

    assert f"order {order.id} (pending)" in follow(admin_client, page, str(order.id))
    assert "ada@example.com" in follow(admin_client, page, str(customer.id))


def test_the_payment_list_links_each_payment_to_its_order(admin_client):
    payment = PaymentFactory()
    order = Order.objects.create(
        id=payment.order_id,
        customer_id=payment.customer_id,
        total=payment.amount,
        payment_method=payment.method,
    )

    listed = admin_client.get(PAYMENTS).content.decode()

    assert f"order {order.id} (pending)" in follow(admin_client, listed, str(order.id))
