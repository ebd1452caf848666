"""Throttles: 429 problem details per address and per customer; services are exempt."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from cleave.testing import customer_headers, service_headers


@pytest.fixture
def rates(settings):
    def set_rates(anon: str, user: str) -> None:
        settings.REST_FRAMEWORK = {
            **settings.REST_FRAMEWORK,
            "DEFAULT_THROTTLE_RATES": {"anon": anon, "user": user},
        }

    cache.clear()  # the throttles count in the cache
    yield set_rates
    cache.clear()


@pytest.mark.django_db(databases="__all__")
def test_an_address_over_its_rate_gets_429_problem_details_with_retry_after(api, rates):
    rates(anon="2/minute", user="1000/minute")

    codes = [api.get("/api/catalog/products").status_code for _ in range(3)]

    assert codes == [200, 200, 429]
    response = api.get("/api/catalog/products")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert 0 < int(response["Retry-After"]) <= 60
    body = response.json()
    assert body["status"] == 429
    assert body["title"]


@pytest.mark.django_db(databases="__all__")
def test_each_customer_has_a_rate_of_their_own(api, rates):
    rates(anon="1000/minute", user="1/minute")
    first, second = customer_headers(uuid.uuid4()), customer_headers(uuid.uuid4())

    assert api.get("/api/orders/", headers=first).status_code == 200
    assert api.get("/api/orders/", headers=first).status_code == 429
    assert api.get("/api/orders/", headers=second).status_code == 200


@pytest.mark.django_db(databases="__all__")
def test_service_calls_are_not_throttled(api, rates):
    rates(anon="1/minute", user="1/minute")
    headers = service_headers("analytics:read")

    codes = {api.get("/api/analytics/summary", headers=headers).status_code for _ in range(5)}

    assert codes == {200}


@pytest.mark.django_db(databases="__all__")
def test_anonymous_clients_get_the_anonymous_rate_even_when_the_customers_is_lower(api, rates):
    rates(anon="5/minute", user="2/minute")

    codes = [api.get("/api/catalog/categories").status_code for _ in range(6)]

    assert codes == [200] * 5 + [429]


@pytest.mark.django_db(databases="__all__")
def test_a_customer_gets_the_customer_rate_even_when_the_anonymous_one_is_lower(api, rates):
    rates(anon="1/minute", user="3/minute")
    headers = customer_headers(uuid.uuid4())

    codes = [api.get("/api/orders/", headers=headers).status_code for _ in range(4)]

    assert codes == [200] * 3 + [429]


@pytest.mark.django_db(databases="__all__")
def test_the_count_starts_again_with_the_next_window(api, rates, monkeypatch):
    from cleave.http.throttles import AnonThrottle

    clock = [1000.25]
    monkeypatch.setattr(AnonThrottle, "timer", lambda self: clock[0])
    rates(anon="2/minute", user="1000/minute")

    codes = [api.get("/api/catalog/products").status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    # the window is the minute: [960, 1020); what is left of it is the wait
    assert api.get("/api/catalog/products")["Retry-After"] == "20"
    clock[0] = 1020.0
    assert api.get("/api/catalog/products").status_code == 200
