"""
The orders admin: an order is never deleted; a refund, from the order's page
or from the list, asks first; an order links to its customer, payment,
reservation and checkout saga, and the saga back to it.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission

from cleave.testing import flows
from contexts.orders.models import Order
from contexts.payments.models import Payment
from tests.contexts.orders.conftest import add, checkout
from tests.support.links import follow, href

pytestmark = flows

ORDERS = "/admin/orders/order/"
SAGAS = "/admin/cleave/sagainstance/"


@pytest.fixture
def order(api, shop) -> Order:
    add(api, shop, shop.mug, 1)
    response = checkout(api, shop, "tok_visa")
    assert response.status_code == 202, response.json()
    placed = Order.objects.get(pk=response.json()["order_id"])
    assert placed.status == Order.Status.CONFIRMED
    return placed


def test_an_order_cannot_be_deleted(admin_client, order):
    page = admin_client.get(f"{ORDERS}{order.id}/change/").content.decode()
    listed = admin_client.get(ORDERS).content.decode()
    delete = admin_client.post(f"{ORDERS}{order.id}/delete/", {"post": "yes"})

    assert "deletelink" not in page
    assert "delete_selected" not in listed
    assert delete.status_code == 403
    assert Order.objects.filter(pk=order.id).exists()


def test_the_refund_button_asks_first_then_refunds_and_cancels(admin_client, order):
    page = admin_client.get(f"{ORDERS}{order.id}/change/").content.decode()
    refund = f"{ORDERS}{order.id}/do/refund/"

    asked = admin_client.post(refund)
    order.refresh_from_db()
    still = order.status
    done = admin_client.post(refund, {"post": "yes"}, follow=True)

    assert f'action="{refund}"' in page and ">Refund and cancel</button>" in page
    assert asked.status_code == 200
    assert "Refund and cancel these orders, as the customer asked?" in asked.content.decode()
    assert str(order.id) in asked.content.decode()
    assert still == Order.Status.CONFIRMED
    assert done.redirect_chain[-1][0] == f"{ORDERS}{order.id}/change/"
    assert "refunded and cancelled" in done.content.decode()
    order.refresh_from_db()
    assert (order.status, order.cancellation_reason) == ("cancelled", "customer_request")
    assert Payment.objects.get(pk=order.payment_id).status == "refunded"
    # a cancelled order offers no second refund
    assert ">Refund and cancel</button>" not in done.content.decode()


def test_the_bulk_refund_asks_first_then_refunds_the_selected_orders(admin_client, order):
    chosen = {"action": "refund", "_selected_action": [str(order.id)]}

    asked = admin_client.post(ORDERS, chosen)
    order.refresh_from_db()
    still = order.status
    done = admin_client.post(ORDERS, {**chosen, "post": "yes"}, follow=True)

    assert asked.status_code == 200
    assert 'name="post" value="yes"' in asked.content.decode()
    assert still == Order.Status.CONFIRMED
    assert "refunded and cancelled" in done.content.decode()
    order.refresh_from_db()
    assert order.status == "cancelled"
    payment = Payment.objects.get(pk=order.payment_id)
    assert (payment.amount, payment.status) == (Decimal("8.50"), "refunded")


def test_an_operator_who_may_only_view_orders_cannot_refund(client, django_user_model, order):
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_order"))
    client.force_login(viewer)

    page = client.get(f"{ORDERS}{order.id}/change/")
    refund = client.post(f"{ORDERS}{order.id}/do/refund/", {"post": "yes"})

    assert page.status_code == 200 and "Refund and cancel</button>" not in page.content.decode()
    assert refund.status_code == 403
    order.refresh_from_db()
    assert order.status == Order.Status.CONFIRMED


# --- links: the order, its customer, payment, reservation and saga ----------------------------


def test_the_order_page_links_to_its_customer_payment_reservation_and_saga(admin_client, order):
    body = admin_client.get(f"{ORDERS}{order.id}/change/").content.decode()

    customer = follow(admin_client, body, str(order.customer_id))
    payment = follow(admin_client, body, str(order.payment_id))
    reservation = follow(admin_client, body, str(order.reservation_id))
    saga = follow(admin_client, body, str(order.saga_id))

    assert "ada@example.com" in customer
    assert f"{order.total} EUR captured (order {order.id})" in payment
    assert f"Reservation {order.reservation_id} (committed)" in reservation
    assert f"checkout {order.saga_id} (completed)" in saga
    # the checkout's saga lives in the orders alias, beside the order
    assert href(body, str(order.saga_id)).endswith("?context=orders")


def test_the_order_list_links_each_order_to_its_customer(admin_client, order):
    body = admin_client.get(ORDERS).content.decode()

    assert "ada@example.com" in follow(admin_client, body, str(order.customer_id))


def test_the_checkout_saga_links_back_to_its_order(admin_client, order):
    listed = admin_client.get(SAGAS).content.decode()
    saga = admin_client.get(f"{SAGAS}{order.saga_id}/change/").content.decode()

    assert f"order {order.id} (confirmed)" in follow(admin_client, saga, f"order {order.id}")
    # the list shows each saga's order too
    assert f"order {order.id} (confirmed)" in follow(admin_client, listed, f"order {order.id}")


def test_the_saga_list_finds_a_checkout_by_its_order(admin_client, order, api, shop):
    add(api, shop, shop.tee, 1)
    other = Order.objects.get(pk=checkout(api, shop, "tok_visa").json()["order_id"])

    found = admin_client.get(SAGAS, {"q": str(order.id)}).content.decode()

    assert str(order.saga_id) in found
    assert str(other.saga_id) not in found
