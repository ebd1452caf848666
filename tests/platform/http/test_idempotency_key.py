"""Every endpoint that honours `Idempotency-Key` reads it the same way (cleave.api)."""

from __future__ import annotations

import pytest
from rest_framework.test import APIRequestFactory

from cleave.core.errors import ApplicationError
from cleave.http.idempotency import idempotency_key
from cleave.http.problems import status_for
from cleave.testing import customer_headers, flows, service_headers, unit
from contexts.inventory.models import StockItem


def request_with(key: str | None):
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    return APIRequestFactory().post("/", **headers)


def test_a_key_is_read_without_its_surrounding_space():
    assert idempotency_key(request_with("  order-7  ")) == "order-7"
    assert idempotency_key(request_with("   ")) is None
    assert idempotency_key(request_with(None)) is None


def test_a_key_longer_than_its_column_is_a_problem_naming_the_header():
    with pytest.raises(ApplicationError) as refused:
        idempotency_key(request_with("k" * 256))
    assert status_for(refused.value) == 400
    assert refused.value.errors == {"Idempotency-Key": ["At most 255 characters."]}


@unit
@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/orders/checkout", customer_headers("5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b")),
        ("/api/inventory/reservations", service_headers("inventory:write")),
        ("/api/payments/charges", service_headers("payments:write")),
    ],
)
def test_every_endpoint_refuses_an_overlong_key_alike(api, path, headers):
    body = {
        "/api/orders/checkout": {"payment_method": "tok_visa"},
        "/api/inventory/reservations": {
            "order_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
            "lines": [{"sku": "TEE-1", "quantity": 1}],
        },
        "/api/payments/charges": {
            "order_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
            "customer_id": "5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b",
            "amount": "10.00",
            "currency": "EUR",
            "payment_method": "tok_visa",
        },
    }[path]

    response = api.post(
        path, body, format="json", headers={**headers, "Idempotency-Key": "k" * 300}
    )

    assert response.status_code == 400, response.content
    assert "Idempotency-Key" in response.json()["errors"]


@flows
def test_a_charge_key_reused_for_another_charge_is_a_409(api):
    headers = {**service_headers("payments:write"), "Idempotency-Key": "charge-1"}
    charge = {
        "order_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b",
        "customer_id": "5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b",
        "amount": "10.00",
        "currency": "EUR",
        "payment_method": "tok_visa",
    }
    first = api.post("/api/payments/charges", charge, format="json", headers=headers)
    again = api.post("/api/payments/charges", charge, format="json", headers=headers)
    other = api.post(
        "/api/payments/charges", {**charge, "amount": "11.00"}, format="json", headers=headers
    )

    assert (first.status_code, again.status_code) == (201, 200), again.content
    assert again.json()["id"] == first.json()["id"]
    assert_reused(other)


@flows
def test_a_reservation_key_reused_for_another_order_is_a_409(api):
    StockItem.objects.using("inventory").create(sku="TEE-1", on_hand=10)
    headers = {**service_headers("inventory:write"), "Idempotency-Key": "reserve-1"}
    lines = [{"sku": "TEE-1", "quantity": 1}]
    first = api.post(
        "/api/inventory/reservations",
        {"order_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "lines": lines},
        format="json",
        headers=headers,
    )
    other = api.post(
        "/api/inventory/reservations",
        {"order_id": "1b2c3d4e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "lines": lines},
        format="json",
        headers=headers,
    )

    assert first.status_code == 201, first.content
    assert_reused(other)


def assert_reused(response) -> None:
    """The one answer every endpoint gives a key reused for a different request."""
    assert response.status_code == 409, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("/idempotency-key-reused")
