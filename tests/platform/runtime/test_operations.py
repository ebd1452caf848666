"""Problem details, the operations endpoints and the OpenAPI schema."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from drf_spectacular.drainage import GENERATOR_STATS

from cleave.testing import unit

PROBLEM = "application/problem+json"


def test_an_unknown_url_is_a_404_problem(api):
    response = api.get("/api/no-such-thing/here")

    assert response.status_code == 404
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["status"] == 404
    assert body["title"] == "Not found"
    assert body["type"].startswith("https://")
    assert "/api/no-such-thing/here" in body["detail"]


@unit
def test_malformed_json_is_a_400_problem(api):
    response = api.post("/api/users/", data='{"email": ', content_type="application/json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["status"] == 400
    assert body["detail"]


@unit
def test_invalid_fields_are_a_400_problem_naming_each_field(api):
    response = api.post("/api/users/", {"email": "not-an-email", "name": ""}, format="json")

    assert response.status_code == 400
    assert response["Content-Type"] == PROBLEM
    body = json.loads(response.content)
    assert body["type"].endswith("/validation-error")
    assert set(body["errors"]) == {"email", "password", "name"}


def test_a_wrong_media_type_is_a_415_problem(api):
    response = api.post("/api/users/", data="email=a", content_type="text/plain")

    assert response.status_code == 415
    assert response["Content-Type"] == PROBLEM


def test_a_missing_token_is_a_401_problem(api):
    response = api.get("/api/users/me")

    assert response.status_code == 401
    assert response["Content-Type"] == PROBLEM
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_health_answers_without_touching_a_database(api):
    response = api.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_every_response_carries_a_request_id(api):
    assert api.get("/health")["X-Request-ID"]
    assert api.get("/health", headers={"X-Request-ID": "abc-123"})["X-Request-ID"] == "abc-123"
    # An id that could smuggle something into logs is replaced.
    assert api.get("/health", headers={"X-Request-ID": "a b\nc"})["X-Request-ID"] != "a b\nc"


@unit
def test_ready_checks_every_database_alias(api, settings):
    response = api.get("/ready")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {f"database:{alias}" for alias in settings.DATABASES}
    assert all(check["status"] == "ok" for check in body["checks"].values())


@unit
def test_ready_answers_503_when_the_broker_is_down(api, settings):
    settings.CLEAVE_EVENT_TRANSPORT = "celery"
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:1//"

    response = api.get("/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["status"] == "error"


@unit
def test_metrics_are_exposed_in_the_prometheus_text_format(api):
    api.get("/api/catalog/categories")
    api.get("/api/catalog/products/6f1c3c1e-0c8e-4a35-9d2d-3b0e4f0c9a11")

    response = api.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert "# TYPE http_request_duration_seconds histogram" in text
    # the route is the URL pattern, never the raw path with its id
    assert (
        'http_requests_total{method="GET",route="/api/catalog/products/<uuid:product_id>",'
        'service="cleave",status_code="404"}'
    ) in text
    assert "6f1c3c1e" not in text
    assert 'le="0.005"' in text and 'le="0.3"' in text and 'le="10.0"' in text
    for name in ("cleave_outbox_pending", "cleave_outbox_lag_seconds", "cleave_dead_letters"):
        assert f"# TYPE {name} gauge" in text


@unit
def test_metrics_are_not_served_to_the_world(api, settings):
    settings.CLEAVE_METRICS_TOKEN = "scrape-token-for-tests"

    outside = api.get("/metrics", REMOTE_ADDR="203.0.113.9")
    with_token = api.get(
        "/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer scrape-token-for-tests"
    )
    wrong = api.get("/metrics", REMOTE_ADDR="203.0.113.9", HTTP_AUTHORIZATION="Bearer guess")
    inside = api.get("/metrics", REMOTE_ADDR="10.1.2.3")

    assert outside.status_code == 404
    assert outside["Content-Type"] == "application/problem+json"
    assert with_token.status_code == 200
    assert wrong.status_code == 404
    assert inside.status_code == 200


def test_the_openapi_schema_is_served(api):
    response = api.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})

    assert response.status_code == 200
    schema = json.loads(response.content)
    assert schema["openapi"].startswith("3.")
    assert "/api/users/customers/{customer_id}" in schema["paths"]


def test_the_generated_schema_validates_without_errors(tmp_path):
    GENERATOR_STATS.reset()

    call_command("spectacular", "--validate", "--file", str(tmp_path / "schema.yml"))

    errors = dict(GENERATOR_STATS._error_cache)
    assert not errors, "\n".join(errors)
    assert (tmp_path / "schema.yml").read_text().startswith("openapi: 3")


@pytest.mark.parametrize("path", ["/api/docs/", "/admin/login/"])
def test_the_docs_and_the_admin_login_are_served(api, path):
    assert api.get(path).status_code == 200


def test_a_worker_without_a_web_process_serves_its_metrics_on_its_own_port(settings):
    import requests

    from cleave.observability.metrics import EVENTS_PUBLISHED, serve_port
    from tests.support.live import free_port

    settings.CLEAVE_METRICS_PORT = 0
    assert serve_port() is None  # off unless asked for
    settings.CLEAVE_METRICS_PORT = free_port()
    EVENTS_PUBLISHED.labels("probe.served", "users").inc()
    server, thread = serve_port()
    try:
        text = requests.get(
            f"http://127.0.0.1:{settings.CLEAVE_METRICS_PORT}/metrics", timeout=5
        ).text
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    assert 'cleave_events_published_total{context="users",type="probe.served"}' in text


@unit
def test_json_nested_too_deeply_is_a_400_problem_not_a_500(api):
    response = api.post(
        "/api/users/", data="[" * 5000 + "]" * 5000, content_type="application/json"
    )

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    assert "nested too deeply" in response.json()["detail"]


@unit
def test_a_body_over_the_upload_limit_is_a_413_problem_not_a_500(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = '{"email": "' + "a" * 2000 + '@example.com", "password": "x", "name": "x"}'

    response = api.post("/api/users/", data=body, content_type="application/json")

    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"


@unit
@pytest.mark.parametrize(
    ("remote", "forwarded", "proxies", "detailed"),
    [
        ("127.0.0.1", None, 0, True),  # a probe, the scraper
        ("10.244.1.17", None, 1, True),  # a pod of the cluster, behind no proxy
        ("203.0.113.9", None, 0, False),  # the world
        ("127.0.0.1", "203.0.113.9", 1, False),  # the world, through the gateway
        ("127.0.0.1", "10.0.0.1, 203.0.113.9", 1, False),  # a forged first entry
        ("203.0.113.9", "10.0.0.1", 0, False),  # the world, straight to gunicorn
    ],
)
def test_readiness_details_are_for_the_inside_only(
    api, settings, remote, forwarded, proxies, detailed
):
    settings.CLEAVE_TRUSTED_PROXIES = proxies
    headers = {"HTTP_X_FORWARDED_FOR": forwarded} if forwarded else {}

    body = api.get("/ready", REMOTE_ADDR=remote, **headers).json()

    assert body["status"] == "ok"
    assert ("checks" in body) is detailed
    assert ("circuits" in body) is detailed


@pytest.mark.parametrize(
    "body", [b'{"email": "a', b"\xff\xfe{}", b"not json"], ids=["truncated", "codec", "text"]
)
def test_a_malformed_body_is_described_without_the_decoders_words(api, body):
    response = api.post("/api/users/", data=body, content_type="application/json")

    assert response.status_code == 400
    detail = response.json()["detail"]
    assert detail == "JSON parse error - the body is not a JSON document in UTF-8."


# --- every method on the probes, and a format no renderer takes ----------------------------


@unit
@pytest.mark.parametrize("path", ["/health", "/ready"])
def test_a_probe_answers_head_as_get_without_a_body_and_options_with_its_methods(api, path):
    head = api.head(path)
    options = api.options(path)

    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Type"] == "application/json"
    assert options.status_code == 204
    assert options["Allow"] == "GET, HEAD, OPTIONS"
    assert options.content == b""


@unit
@pytest.mark.parametrize("path", ["/health", "/ready"])
@pytest.mark.parametrize("method", ["TRACE", "DELETE", "POST", "PUT", "PATCH"])
def test_any_other_method_on_a_probe_is_a_405_problem_never_a_csrf_refusal(api, path, method):
    response = api.generic(method, path)

    assert response.status_code == 405
    assert response["Content-Type"] == "application/problem+json"
    assert response["Allow"] == "GET, HEAD, OPTIONS"
    assert response.json()["type"].endswith("method-not-allowed")


@unit
@pytest.mark.parametrize("query", ["?format=xml", "?format=html"])
def test_a_schema_format_no_renderer_takes_is_a_json_problem(api, query):
    response = api.get(f"/api/schema/{query}")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["status"] == 404  # JSON, not the YAML renderer's output


@unit
def test_the_schema_is_still_served_as_yaml_and_json(api):
    assert api.get("/api/schema/").content.startswith(b"openapi:")
    assert api.get("/api/schema/?format=json").json()["openapi"].startswith("3.")
