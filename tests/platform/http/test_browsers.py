"""
Sessions, CSRF, the signed-in user and messages are skipped for an API call
without cookies, and only for it: the admin's sign-in page still sets its
CSRF cookie, and an operator's session still reads the API.
"""

from __future__ import annotations

import pytest
from django.http import HttpResponse
from django.test import RequestFactory

from cleave.http import browsers
from cleave.testing import unit

pytestmark = unit

MIDDLEWARE = [
    browsers.SessionMiddleware,
    browsers.AuthenticationMiddleware,
    browsers.MessageMiddleware,
    browsers.CsrfViewMiddleware,
]


def seen_by(middleware, request):
    """The request as the view behind `middleware` sees it."""
    seen = {}

    def view(request):
        seen.update(vars(request))
        return HttpResponse("ok")

    chain = view
    for cls in reversed(MIDDLEWARE[: MIDDLEWARE.index(middleware) + 1]):
        chain = cls(chain)
    chain(request)
    return seen


@pytest.mark.parametrize("middleware", MIDDLEWARE)
def test_an_api_call_without_cookies_skips_them(middleware):
    seen = seen_by(middleware, RequestFactory().get("/api/catalog/products"))

    assert not {"session", "user", "_messages"} & set(seen)


@pytest.mark.parametrize(
    "request_",
    [
        RequestFactory().get("/api/catalog/products", HTTP_COOKIE="sessionid=abc"),
        RequestFactory().get("/admin/login/"),
        RequestFactory().get("/apiary"),
    ],
    ids=["api-with-a-cookie", "admin", "not-the-api"],
)
def test_every_other_request_goes_through_them(request_):
    seen = seen_by(browsers.MessageMiddleware, request_)

    assert {"session", "user", "_messages"} <= set(seen)


def test_the_csrf_check_is_skipped_only_for_an_api_call_without_cookies():
    middleware = browsers.CsrfViewMiddleware(lambda request: HttpResponse())

    def post(path, **extra):
        request = RequestFactory().post(path, **extra)
        return middleware.process_view(request, lambda r: None, (), {})

    assert post("/api/orders/checkout") is None
    refused = post("/admin/login/", HTTP_COOKIE="csrftoken=x")
    assert refused is not None and refused.status_code == 403


def test_the_admin_sign_in_page_still_sets_its_csrf_cookie(client):
    page = client.get("/admin/login/")

    assert page.status_code == 200
    assert "csrftoken" in page.cookies


def test_an_operators_session_still_reads_the_api(admin_client):
    answer = admin_client.get("/api/analytics/summary")

    assert answer.status_code == 200, answer.content
