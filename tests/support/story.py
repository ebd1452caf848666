"""
The walking-skeleton user story over real HTTP: register, browse, buy with an
approved card, buy with a declined card, and look at it all as an operator.

It runs against any base URL; the caller says how to seed the demo data, read
the sent mail and create an operator, so the same story runs against
pytest-django's live server (in-process bus) and against an installation in
subprocesses with Celery workers (tests/e2e/test_customer_story.py). Events
may be applied after the HTTP answer (workers), so what subscribers build is
polled for, with a deadline.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import requests

from cleave.testing import service_headers

TIMEOUT = 20.0
# the operator the story creates and signs in as (tests/support/console.py too)
OPERATOR = ("operator", "operator pass 1")


def eventually(check: Callable[[], Any], *, timeout: float = TIMEOUT, what: str = "") -> Any:
    """Call `check` until it stops raising AssertionError; return its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise AssertionError(f"not true within {timeout}s: {what}") from None
            time.sleep(0.1)


def _poll_order(session, base, order_id, *, timeout=TIMEOUT):
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
    # one business flow: every event it causes, in any context, carries this id
    correlation_id = f"checkout-{uuid.uuid4()}"
    response = session.post(
        f"{base}/api/orders/checkout",
        json={"payment_method": payment_method},
        headers={"X-Correlation-ID": correlation_id},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert set(body) == {"order_id", "status", "saga_id"}
    return {**_poll_order(session, base, body["order_id"]), "correlation_id": correlation_id}


def analytics_summary(base):
    return requests.get(
        f"{base}/api/analytics/summary", headers=service_headers("analytics:read"), timeout=10
    ).json()


def _kinds(session, base):
    return [n["kind"] for n in session.get(f"{base}/api/notifications/").json()["results"]]


@dataclass
class StoryResult:
    customer_id: str
    confirmed_order: dict
    declined_order: dict


def customer_story(
    base: str,
    *,
    seed: Callable[[], None],
    mail_subjects: Callable[[], list[str]],
    create_operator: Callable[[str, str, str], None],
) -> StoryResult:
    seed()
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

    def notified_of_confirmation():
        kinds = _kinds(shop, base)
        assert "order_confirmed" in kinds and "welcome" in kinds, kinds

    eventually(notified_of_confirmation, what="the confirmation and welcome notifications")

    def mailed_confirmation():
        subjects = mail_subjects()
        assert any("confirmed" in subject.lower() for subject in subjects), subjects

    eventually(mailed_confirmation, what="the confirmation email")
    assert shop.get(f"{base}/api/orders/cart").json()["items"] == []

    def counted_confirmation():
        summary = analytics_summary(base)
        assert summary["orders_confirmed"] == 1, summary
        assert Decimal(summary["revenue"]) == expected_total
        assert summary["users_registered"] == 1
        assert {p["sku"] for p in summary["top_products"]} == {first["sku"], second["sku"]}

    eventually(counted_confirmation, what="analytics counting the confirmed order")

    # 4. a declined checkout: cancelled, reservation released, payment declined
    stock_before = _available(base, first["sku"])
    declined = _checkout(shop, base, [(first, 3)], "tok_chargeDeclined")
    assert declined["status"] == "cancelled", declined
    assert declined["cancellation_reason"] == "payment_declined"
    assert _available(base, first["sku"]) == stock_before
    assert shop.get(f"{base}/api/payments/{declined['payment_id']}").json()["status"] == "declined"
    eventually(
        lambda: _assert_in("order_cancelled", _kinds(shop, base)),
        what="the cancellation notification",
    )

    def counted_cancellation():
        summary = analytics_summary(base)
        assert summary["orders_cancelled"] == 1 and summary["orders_confirmed"] == 1, summary

    eventually(counted_cancellation, what="analytics counting the cancelled order")

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

    # 5. an operator sees every context's data, the outbox, deliveries, dead
    # letters and the saga instances
    create_operator(OPERATOR[0], "op@example.com", OPERATOR[1])
    admin = requests.Session()
    login_page = admin.get(f"{base}/admin/login/")
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.text).group(1)
    response = admin.post(
        f"{base}/admin/login/?next=/admin/",
        data={"username": OPERATOR[0], "password": OPERATOR[1], "csrfmiddlewaretoken": csrf},
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
    for page in ("deadletter", "delivery", "inboxrecord"):
        listing = admin.get(f"{base}/admin/cleave/{page}/?context=analytics")
        assert listing.status_code == 200, page
    inbox = admin.get(f"{base}/admin/cleave/inboxrecord/?context=analytics").text
    assert "order.confirmed" in inbox
    sagas = admin.get(f"{base}/admin/cleave/sagainstance/?context=orders")
    assert sagas.status_code == 200 and "compensated" in sagas.text and "completed" in sagas.text

    # 6. the OpenAPI document and Swagger UI
    schema = requests.get(f"{base}/api/schema/", params={"format": "json"}, timeout=10)
    assert schema.status_code == 200 and "/api/orders/checkout" in schema.json()["paths"]
    assert requests.get(f"{base}/api/docs/", timeout=10).status_code == 200
    return StoryResult(customer["id"], order, declined)


def _assert_in(item, collection) -> None:
    assert item in collection, collection


# The events one approved checkout publishes, each from its own context.
CHECKOUT_EVENTS = {
    "order.placed": "orders",
    "inventory.reserved": "inventory",
    "payment.completed": "payments",
    "inventory.committed": "inventory",
    "order.confirmed": "orders",
}
