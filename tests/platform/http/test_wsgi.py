"""The web process's WSGI application: a service call skips the browser's middleware."""

from __future__ import annotations

import sys
from io import BytesIO

import pytest
from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import override_settings

from cleave.auth.tokens import SERVICE_TOKEN_HEADER, issue_service_token, service_token_for
from cleave.calls.operations import grants_of
from cleave.http.wsgi import (
    BROWSER_ONLY,
    SESSION_ONLY,
    Application,
    is_cookieless_api,
    is_service_call,
)
from contexts.users import commands

TOKEN = "HTTP_" + SERVICE_TOKEN_HEADER.upper().replace("-", "_")


@pytest.fixture(scope="module")
def application():
    from config.wsgi import application

    # config.wsgi is the web role's bootstrap: the application it serves is this one
    assert isinstance(application, Application)
    return application


@pytest.fixture
def customer(db):
    return commands.customer_register(email="ada@example.com", password="x" * 10, name="Ada")


def environ(path: str, **headers: str) -> dict:
    env = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "testserver",
        "HTTP_ACCEPT": "application/json",
        "wsgi.input": BytesIO(b""),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.version": (1, 0),
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    env.update(headers)
    return env


def serve(application, env: dict) -> tuple[int, dict[str, str], bytes]:
    """
    One request through the application. As Django's test client does, the
    request signals do not close the test's connections, which hold its
    transaction (on PostgreSQL a new one cannot open inside it).
    """
    answer: dict = {}
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        return _serve(application, env, answer)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _serve(application, env: dict, answer: dict) -> tuple[int, dict[str, str], bytes]:

    def start_response(status, headers, exc_info=None):
        answer["status"] = int(status.split()[0])
        answer["headers"] = dict(headers)

    body = application(env, start_response)
    try:
        content = b"".join(body)
    finally:
        body.close()
    return answer["status"], answer["headers"], content


def test_the_service_stack_is_the_full_one_minus_what_serves_browsers(application):
    assert set(settings.MIDDLEWARE) >= BROWSER_ONLY, "a name in BROWSER_ONLY is not installed"
    kept = application.service.middleware
    assert kept == [path for path in settings.MIDDLEWARE if path not in BROWSER_ONLY]
    assert "cleave.observability.metrics.HttpMetricsMiddleware" in kept
    assert "cleave.http.problems.DatabaseUnavailableMiddleware" in kept
    api = application.api.middleware
    assert api == [path for path in settings.MIDDLEWARE if path not in SESSION_ONLY]
    assert "django.middleware.clickjacking.XFrameOptionsMiddleware" in api
    assert "django.contrib.sessions.middleware.SessionMiddleware" not in api
    # building the service stack left the setting (which the deploy checks read) as it was
    assert "django.contrib.sessions.middleware.SessionMiddleware" in settings.MIDDLEWARE
    assert application.service._middleware_chain is not application.web._middleware_chain


@pytest.mark.django_db(databases="__all__")
def test_a_service_call_skips_the_browser_middleware(application, customer):
    token = service_token_for("orders", grants_of("orders"))
    env = environ(f"/api/users/customers/{customer.id}", **{TOKEN: token}, HTTP_X_REQUEST_ID="r-1")

    status, headers, content = serve(application, env)

    assert status == 200, content
    assert b"ada@example.com" in content
    assert headers["X-Request-ID"] == "r-1"  # the flow ids' middleware ran
    assert "X-Frame-Options" not in headers  # the clickjacking middleware did not


@pytest.mark.django_db(databases="__all__")
def test_a_token_that_does_not_verify_takes_the_full_stack_and_is_refused(application, customer):
    with override_settings(CLEAVE_SERVICE_JWT_SECRET="another-deployment-" * 3):
        forged = issue_service_token("orders", grants_of("orders"))
    env = environ(f"/api/users/customers/{customer.id}", **{TOKEN: forged})

    assert not is_service_call(env)
    status, headers, content = serve(application, env)

    assert status == 401, content
    assert headers["X-Frame-Options"] == "DENY"


@pytest.mark.django_db(databases="__all__")
def test_only_api_paths_with_a_service_token_are_service_calls(customer):
    token = service_token_for("orders", grants_of("orders"))

    assert is_service_call(environ("/api/users/customers/x", **{TOKEN: token}))
    assert not is_service_call(environ("/admin/", **{TOKEN: token}))
    assert not is_service_call(environ("/health", **{TOKEN: token}))
    assert not is_service_call(environ("/api/users/customers/x"))
    assert not is_service_call(environ("/api/users/customers/x", **{TOKEN: "not-a-jwt"}))


def test_only_api_requests_without_a_cookie_take_the_cookieless_stack():
    assert is_cookieless_api(environ("/api/catalog/products"))
    assert not is_cookieless_api(environ("/api/catalog/products", HTTP_COOKIE="sessionid=x"))
    assert not is_cookieless_api(environ("/admin/"))
    assert not is_cookieless_api(environ("/static/admin/css/base.css"))


@pytest.mark.django_db(databases="__all__")
def test_an_api_read_is_answered_alike_with_and_without_a_cookie(application):
    bare = serve(application, environ("/api/catalog/products"))
    cookie = serve(application, environ("/api/catalog/products", HTTP_COOKIE="sessionid=nope"))

    assert bare[0] == cookie[0] == 200
    assert bare[2] == cookie[2]
    assert bare[1]["X-Frame-Options"] == cookie[1]["X-Frame-Options"] == "DENY"
    assert "X-Request-ID" in bare[1]
