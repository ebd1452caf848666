"""
A customer's whole life through the public API, and what every context keeps
of them afterwards: register, verify the address with the mailed token, buy,
rename, delete the account. Run on each transport by test_customer_lifecycle.py.

`sql(alias, query)` reads a context's tables (the suite's databases, or an
installation's SQLite files), for what no API shows: the event log's
redactions, the recipient's tombstone, the anonymised order.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import requests

from tests.support.story import _checkout, eventually

Rows = list[tuple]


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def customer_lifecycle(
    base: str,
    *,
    seed: Callable[[], None],
    mail_bodies: Callable[[], list[str]],
    sql: Callable[[str, str], Rows],
) -> None:
    seed()
    email = f"ada-{uuid.uuid4().hex[:8]}@example.com"
    password = "correct horse"
    shop = requests.Session()

    # 1. register: the address is not verified yet, and a token is mailed to it
    customer = shop.post(
        f"{base}/api/users/", json={"email": email, "password": password, "name": "Ada"}
    ).json()
    customer_id = customer["id"]
    assert customer["email_verified"] is False
    tokens = shop.post(f"{base}/api/users/token", json={"email": email, "password": password})
    shop.headers["Authorization"] = f"Bearer {tokens.json()['access']}"

    def mailed_token() -> str:
        for body in mail_bodies():
            if email in body and "/api/users/verify" in body:
                found = re.search(r"^(\S{40,})$", body, re.MULTILINE)
                if found:
                    return found.group(1)
        raise AssertionError(f"no verification mail to {email} yet")

    token = eventually(mailed_token, what="the verification mail")

    # 2. verify: /me says so, and so does every context that cares
    verified = requests.post(f"{base}/api/users/verify", json={"token": token}, timeout=10)
    assert verified.status_code == 200, verified.text
    assert shop.get(f"{base}/api/users/me").json()["email_verified"] is True

    db_id = _db_id(customer_id)
    recipient = f"FROM notifications_recipient WHERE customer_id = '{db_id}'"

    def recipient_verified():
        [(verified_at,)] = sql("notifications", f"SELECT verified_at {recipient}")
        assert verified_at is not None

    eventually(recipient_verified, what="notifications learning the address is verified")

    # 3. buy something: the order will outlive the account, as a financial record
    product = requests.get(f"{base}/api/catalog/products", timeout=10).json()["results"][0]
    order = _checkout(shop, base, [(product, 1)], "tok_visa")
    assert order["status"] == "confirmed", order

    # 4. rename: the recipient copy follows
    renamed = shop.patch(f"{base}/api/users/me", json={"name": "Ada Lovelace"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Ada Lovelace", renamed.text

    def recipient_renamed():
        rows = sql("notifications", f"SELECT name {recipient}")
        assert rows == [("Ada Lovelace",)], rows

    eventually(recipient_renamed, what="notifications learning the new name")

    # 5. delete the account: the password asked again, then every token refused
    wrong = shop.delete(f"{base}/api/users/me", json={"password": "not it"})
    assert wrong.status_code == 403, wrong.text
    deleted = shop.delete(f"{base}/api/users/me", json={"password": password})
    assert deleted.status_code == 204, deleted.text

    def tokens_refused():
        for path in ("/api/users/me", "/api/orders/cart", "/api/notifications/"):
            answer = shop.get(f"{base}{path}")
            assert answer.status_code == 401, (path, answer.status_code, answer.text)
        answer = shop.get(f"{base}/api/payments/{order['payment_id']}")
        assert answer.status_code == 401, answer.text

    eventually(tokens_refused, what="every context refusing the deleted customer's token")
    again = requests.post(
        f"{base}/api/users/token", json={"email": email, "password": password}, timeout=10
    )
    assert again.status_code == 401

    # 6. every context forgot them, the financial record stays
    def forgotten():
        assert sql("users", f"SELECT id FROM users_customer WHERE id = '{db_id}'") == []
        log = sql("users", "SELECT data FROM cleave_outboxevent WHERE type LIKE 'user.%'")
        about = [_json(data) for (data,) in log if _json(data)["customer_id"] == customer_id]
        assert about, "the event log keeps the events (redacted)"
        for data in about:
            assert email not in json.dumps(data) and "Ada" not in json.dumps(data), data
        assert sql("orders", f"SELECT id FROM orders_cart WHERE customer_id = '{db_id}'") == []
        assert sql("orders", f"SELECT id FROM orders_order WHERE customer_id = '{db_id}'") == []
        [(total, method, status)] = sql(
            "orders",
            "SELECT total, payment_method, status FROM orders_order WHERE id = "
            f"'{_db_id(order['id'])}'",
        )
        assert (Decimal(str(total)), method, status) == (Decimal(order["total"]), "", "confirmed")
        [(address, name, erased_at)] = sql(
            "notifications", f"SELECT email, name, erased_at {recipient}"
        )
        assert (address, name) == ("", "") and erased_at is not None
        kept = sql(
            "notifications",
            f"SELECT address, body FROM notifications_notification WHERE customer_id = '{db_id}'",
        )
        assert kept and all(address == "" and body == "" for address, body in kept), kept
        [(payment_status,)] = sql(
            "payments",
            f"SELECT status FROM payments_payment WHERE id = '{_db_id(order['payment_id'])}'",
        )
        assert payment_status == "captured"
        counters = dict(sql("analytics", "SELECT name, value FROM analytics_counter"))
        assert int(counters.get("users_deleted", 0)) >= 1, counters
        assert int(counters.get("users_verified", 0)) >= 1, counters

    eventually(forgotten, what="every context forgetting the customer")


def _db_id(value: str) -> str:
    """A UUID in SQL: 32 hex digits, as Django stores it in SQLite (the servers read it too)."""
    return uuid.UUID(value).hex
