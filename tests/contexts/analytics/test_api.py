import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from cleave.testing import customer_headers, service_headers, unit
from tests.contexts.analytics.factories import CounterFactory, ProductSalesFactory

pytestmark = unit

URL = "/api/analytics/summary"


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == status


def test_a_service_with_analytics_read_gets_the_summary(api):
    CounterFactory(name="users_registered", value=2)
    CounterFactory(name="users_verified", value=1)
    CounterFactory(name="revenue", value="123.4")
    product = ProductSalesFactory(sku="TEE-1", quantity=3, revenue="59.70")

    response = api.get(URL, headers=service_headers("analytics:read"))

    assert response.status_code == 200
    assert response.json() == {
        "users_registered": 2,
        "users_verified": 1,
        "users_deleted": 0,
        "orders_confirmed": 0,
        "orders_cancelled": 0,
        "revenue": "123.40",
        "currency": "EUR",
        "top_products": [
            {
                "product_id": str(product.product_id),
                "sku": "TEE-1",
                "quantity": 3,
                "revenue": "59.70",
            }
        ],
    }


def test_a_staff_session_may_read_the_summary_with_the_counters_view_permission(api):
    staff = get_user_model().objects.create_user("operator", password="x" * 12, is_staff=True)
    api.force_login(staff)
    # the staff flag alone opens nothing, as in the admin
    assert_problem(api.get(URL), 403)

    staff.user_permissions.add(Permission.objects.get(codename="view_counter"))
    response = api.get(URL)

    assert response.status_code == 200
    assert response.json()["currency"] == "EUR"


def test_a_session_without_staff_status_is_403(api):
    api.force_login(get_user_model().objects.create_user("visitor", password="x" * 12))

    assert_problem(api.get(URL), 403)


def test_the_summary_without_credentials_is_401(api):
    assert_problem(api.get(URL), 401)


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda: service_headers("payments:write"),
        lambda: service_headers(),
        lambda: customer_headers(uuid.uuid4()),
    ],
    ids=["other permission", "no permission", "customer"],
)
def test_the_summary_without_analytics_read_is_403(api, make_headers):
    assert_problem(api.get(URL, headers=make_headers()), 403)


def test_a_forged_service_token_is_401(api):
    assert_problem(api.get(URL, headers={"X-Service-Token": "forged"}), 401)
