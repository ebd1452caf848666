"""
The walking-skeleton user story, end to end over real HTTP against a live server:
register, browse, buy with an approved card, buy with a declined card, and look
at it all as an operator.
"""

import re
import time
from decimal import Decimal

import pytest
import requests
from django.contrib.auth import get_user_model
from django.core.management import call_command

from cleave.testing import flows, service_headers

pytestmark = [pytest.mark.e2e, flows]


def _poll_order(session, base, order_id, *, timeout=15.0):
    deadline = time.monotonic() + timeout
    while True:
        order = session.get(f"{base}/api/orders/{order_id}").json()
        if order["status"] != "pending" or time.monotonic() > deadline:
            return order
        time.sleep(0.1)


def _available(base, sku):
    response = requests.get(f"{base}/api/inventory/stock/{sku}", timeout=10)
    assert response.status_code == 200, response.text
    return response.json()["available"]


def _checkout(session, base, cart_lines, payment_method):
    for product, quantity in cart_lines:
        response = session.post(
            f"{base}/api/orders/cart/items",
            json={"product_id": product["id"], "quantity": quantity},
        )
        assert response.status_code == 201, response.text
    response = session.post(f"{base}/api/orders/checkout", json={"payment_method": payment_method})
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"order_id", "status", "saga_id"}
    return _poll_order(session, base, body["order_id"])


def test_a_customer_buys_with_an_approved_card_and_is_declined_with_another(
    live_server, outbox_mail
):
    call_command("seed_demo", verbosity=0)
    base = live_server.url
    shop = requests.Session()
    shop.headers["X-Request-ID"] = "e2e-story-1"

    # 1. register, get tokens, read /me
    response = shop.post(
        f"{base}/api/users/",
        json={"email": "Ada@Example.com", "password": "correct horse", "name": "Ada"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["X-Request-ID"] == "e2e-story-1"
    customer = response.json()
    assert customer["email"] == "ada@example.com" and customer["status"] == "active"
    tokens = shop.post(
        f"{base}/api/users/token", json={"email": "ada@example.com", "password": "correct horse"}
    ).json()
    assert tokens["token_type"] == "Bearer"
    shop.headers["Authorization"] = f"Bearer {tokens['access']}"
    assert shop.get(f"{base}/api/users/me").json()["id"] == customer["id"]

    # 2. list and search demo products, read stock
    page = requests.get(f"{base}/api/catalog/products", timeout=10).json()
    assert page["count"] >= 2 and {"count", "next", "previous", "results"} <= set(page)
    first, second = page["results"][0], page["results"][1]
    found = requests.get(
        f"{base}/api/catalog/products", params={"search": first["name"]}, timeout=10
    ).json()
    assert first["id"] in [p["id"] for p in found["results"]]
    stock_first, stock_second = _available(base, first["sku"]), _available(base, second["sku"])

    # 3. an approved checkout
    order = _checkout(shop, base, [(first, 2), (second, 1)], "tok_visa")
    assert order["status"] == "confirmed", order
    assert order["cancellation_reason"] is None
    expected_total = Decimal(first["price"]) * 2 + Decimal(second["price"])
    assert Decimal(order["total"]) == expected_total
    assert _available(base, first["sku"]) == stock_first - 2
    assert _available(base, second["sku"]) == stock_second - 1
    payment = shop.get(f"{base}/api/payments/{order['payment_id']}").json()
    assert payment["status"] == "captured" and Decimal(payment["amount"]) == expected_total
    kinds = [n["kind"] for n in shop.get(f"{base}/api/notifications/").json()["results"]]
    assert "order_confirmed" in kinds and "welcome" in kinds
    assert any("confirmed" in message.subject.lower() for message in outbox_mail)
    assert shop.get(f"{base}/api/orders/cart").json()["items"] == []

    summary = requests.get(
        f"{base}/api/analytics/summary", headers=service_headers("analytics:read"), timeout=10
    ).json()
    assert summary["orders_confirmed"] == 1
    assert Decimal(summary["revenue"]) == expected_total
    assert summary["users_registered"] == 1
    assert {p["sku"] for p in summary["top_products"]} == {first["sku"], second["sku"]}

    # 4. a declined checkout: cancelled, reservation released, payment declined
    stock_before = _available(base, first["sku"])
    declined = _checkout(shop, base, [(first, 3)], "tok_chargeDeclined")
    assert declined["status"] == "cancelled", declined
    assert declined["cancellation_reason"] == "payment_declined"
    assert _available(base, first["sku"]) == stock_before
    assert shop.get(f"{base}/api/payments/{declined['payment_id']}").json()["status"] == "declined"
    kinds = [n["kind"] for n in shop.get(f"{base}/api/notifications/").json()["results"]]
    assert "order_cancelled" in kinds
    summary = requests.get(
        f"{base}/api/analytics/summary", headers=service_headers("analytics:read"), timeout=10
    ).json()
    assert summary["orders_cancelled"] == 1 and summary["orders_confirmed"] == 1

    # another customer cannot see Ada's order or payment
    requests.post(
        f"{base}/api/users/",
        json={"email": "eve@example.com", "password": "another secret", "name": "Eve"},
        timeout=10,
    )
    eve = requests.Session()
    eve_tokens = eve.post(
        f"{base}/api/users/token", json={"email": "eve@example.com", "password": "another secret"}
    ).json()
    eve.headers["Authorization"] = f"Bearer {eve_tokens['access']}"
    assert eve.get(f"{base}/api/orders/{order['id']}").status_code == 404
    assert eve.get(f"{base}/api/payments/{order['payment_id']}").status_code == 404

    # 5. an operator sees every context's data, the outbox and the saga instances
    get_user_model().objects.create_superuser("operator", "op@example.com", "operator pass 1")
    admin = requests.Session()
    login_page = admin.get(f"{base}/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    response = admin.post(
        f"{base}/admin/login/?next=/admin/",
        data={"username": "operator", "password": "operator pass 1", "csrfmiddlewaretoken": csrf},
        headers={"Referer": f"{base}/admin/login/"},
    )
    assert response.status_code == 200 and "Log out" in response.text
    index = admin.get(f"{base}/admin/").text
    for section in (
        "Users",
        "Catalog",
        "Inventory",
        "Orders",
        "Payments",
        "Notifications",
        "Analytics",
        "Cleave platform",
    ):
        assert section in index, section
    assert order["id"] in admin.get(f"{base}/admin/orders/order/").text
    outbox = admin.get(f"{base}/admin/cleave/outboxevent/?context=orders").text
    assert "order.confirmed" in outbox and "order.cancelled" in outbox
    sagas = admin.get(f"{base}/admin/cleave/sagainstance/?context=orders")
    assert sagas.status_code == 200 and "compensated" in sagas.text and "completed" in sagas.text

    # 6. the OpenAPI document and Swagger UI
    schema = requests.get(f"{base}/api/schema/", params={"format": "json"}, timeout=10)
    assert schema.status_code == 200 and "/api/orders/checkout" in schema.json()["paths"]
    assert requests.get(f"{base}/api/docs/", timeout=10).status_code == 200
