import uuid
from datetime import timedelta

from django.utils import timezone

from cleave.testing import customer_headers, service_headers, unit
from tests.contexts.notifications.factories import NotificationFactory

pytestmark = unit

URL = "/api/notifications/"


def test_a_customer_lists_their_own_notifications_newest_first(api):
    customer_id = uuid.uuid4()
    now = timezone.now()
    older = NotificationFactory(customer_id=customer_id, created_at=now - timedelta(hours=1))
    newer = NotificationFactory(
        customer_id=customer_id, kind="order_confirmed", status="sent", created_at=now
    )
    NotificationFactory()  # someone else's

    response = api.get(URL, headers=customer_headers(customer_id))

    assert response.status_code == 200
    page = response.json()
    assert page["count"] == 2
    assert page["next"] is None and page["previous"] is None
    assert [item["id"] for item in page["results"]] == [str(newer.id), str(older.id)]
    assert page["results"][0] == {
        "id": str(newer.id),
        "kind": "order_confirmed",
        "channel": "email",
        "subject": newer.subject,
        "status": "sent",
        "created_at": page["results"][0]["created_at"],
    }


def test_the_list_is_paginated(api):
    customer_id = uuid.uuid4()
    NotificationFactory.create_batch(3, customer_id=customer_id)

    response = api.get(f"{URL}?page_size=2&page=2", headers=customer_headers(customer_id))

    assert response.status_code == 200
    assert response.json()["count"] == 3
    assert len(response.json()["results"]) == 1
    assert response.json()["previous"] is not None


def test_a_page_past_the_end_is_a_404_problem(api):
    response = api.get(f"{URL}?page=9", headers=customer_headers(uuid.uuid4()))

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_a_customer_without_notifications_gets_an_empty_page(api):
    response = api.get(URL, headers=customer_headers(uuid.uuid4()))

    assert response.status_code == 200
    assert response.json()["results"] == []


def test_listing_needs_a_customer(api):
    assert api.get(URL).status_code == 401
    response = api.get(URL, headers=service_headers("notifications:write"))
    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_an_invalid_token_is_401(api):
    response = api.get(URL, headers={"Authorization": "Bearer not-a-jwt"})

    assert response.status_code == 401
    assert response.json()["status"] == 401
