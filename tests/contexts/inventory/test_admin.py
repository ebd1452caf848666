import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cleave.testing import unit
from contexts.inventory import commands
from contexts.inventory.models import StockItem
from contexts.orders.models import Order
from tests.contexts.inventory.factories import StockItemFactory
from tests.support.links import follow

pytestmark = unit


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="x" * 12))
    return client


def test_the_admin_shows_stock_and_reservations_with_their_lines(operator):
    StockItemFactory(sku="A", on_hand=10)
    reservation, _ = commands.reservation_create(
        order_id=uuid.uuid4(), lines=[{"sku": "A", "quantity": 2}]
    )

    pages = [
        "/admin/inventory/stockitem/",
        "/admin/inventory/stockitem/A/change/",
        "/admin/inventory/reservation/?status__exact=held",
        f"/admin/inventory/reservation/{reservation.id}/change/",
    ]

    for page in pages:
        assert operator.get(page).status_code == 200, page


def test_the_admin_refuses_stock_below_what_is_reserved(operator):
    StockItemFactory(sku="A", on_hand=10)
    commands.reservation_create(order_id=uuid.uuid4(), lines=[{"sku": "A", "quantity": 4}])

    refused = operator.post("/admin/inventory/stockitem/A/change/", {"on_hand": "3"})
    accepted = operator.post("/admin/inventory/stockitem/A/change/", {"on_hand": "6"})

    assert refused.status_code == 200  # the form again, with its error
    assert b"Reserved stock may not exceed" in refused.content
    assert accepted.status_code == 302
    assert StockItem.objects.using("inventory").get(sku="A").on_hand == 6


def test_the_admin_release_action_gives_the_stock_back(operator):
    StockItemFactory(sku="A", on_hand=10)
    reservation, _ = commands.reservation_create(
        order_id=uuid.uuid4(), lines=[{"sku": "A", "quantity": 4}]
    )

    response = operator.post(
        "/admin/inventory/reservation/",
        {"action": "release", "_selected_action": [str(reservation.id)]},
    )

    assert response.status_code == 302
    assert StockItem.objects.using("inventory").get(sku="A").reserved == 0


def test_a_reservation_links_to_its_order_from_its_page_and_the_list(operator):
    StockItemFactory(sku="A", on_hand=10)
    order = Order.objects.create(
        customer_id=uuid.uuid4(), total=Decimal("8.50"), payment_method="tok_visa"
    )
    reservation, _ = commands.reservation_create(
        order_id=order.id, lines=[{"sku": "A", "quantity": 2}]
    )

    page = operator.get(f"/admin/inventory/reservation/{reservation.id}/change/").content.decode()
    listed = operator.get("/admin/inventory/reservation/").content.decode()

    assert f"order {order.id} (pending)" in follow(operator, page, str(order.id))
    assert f"order {order.id} (pending)" in follow(operator, listed, str(order.id))
