"""
A refused CSRF check answers problem details like every other error; only a
browser outside /api/ (an operator's stale admin form) gets Django's HTML page.
"""

from __future__ import annotations

import pytest
from django.test import Client, RequestFactory

from cleave.http.problems import csrf_failure
from cleave.testing import unit

pytestmark = unit


@pytest.fixture
def strict_client() -> Client:
    return Client(enforce_csrf_checks=True)


def test_a_client_that_is_not_a_browser_gets_a_problem(strict_client):
    response = strict_client.post(
        "/admin/login/", {"username": "x", "password": "y"}, headers={"Accept": "application/json"}
    )

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/csrf-failed")
    assert body["status"] == 403 and body["title"] == "CSRF check failed"


def test_a_client_that_accepts_anything_gets_a_problem(strict_client):
    response = strict_client.post("/metrics", {}, headers={"Accept": "*/*"})

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_a_browser_posting_an_admin_form_gets_the_html_page(strict_client):
    response = strict_client.post(
        "/admin/login/",
        {"username": "x", "password": "y"},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_under_the_api_even_a_browser_gets_a_problem():
    request = RequestFactory().post("/api/users/", headers={"Accept": "text/html"})

    response = csrf_failure(request, reason="CSRF cookie not set.")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"


def test_a_staff_session_without_a_csrf_token_gets_a_problem_from_the_api(admin_user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)

    response = client.post("/api/inventory/reservations", {}, content_type="application/json")

    assert response.status_code == 403
    assert response["Content-Type"] == "application/problem+json"
    assert "CSRF" in response.json()["detail"]
