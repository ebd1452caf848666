"""The service client's in-process transport: same routing, auth and headers as HTTP."""

from __future__ import annotations

import uuid

import pytest

from cleave.auth.tokens import decode_service_token, issue_service_token
from cleave.calls.client import (
    HttpCallTransport,
    InProcessCallTransport,
    ServiceClient,
    ServiceError,
)
from cleave.calls.operations import grants_of
from cleave.core import flow
from cleave.testing import unit
from contexts.users import commands


class RecordingTransport(InProcessCallTransport):
    """The in-process transport, remembering what each call sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, client, method, path, body, headers, params, timeout):
        self.sent.append({"method": method, "path": path, "headers": dict(headers)})
        return super().send(client, method, path, body, headers, params, timeout)


@pytest.fixture
def customer():
    return commands.customer_register(email="ada@example.com", password="x" * 10, name="Ada")


def test_a_local_context_is_called_in_process_and_a_remote_one_over_http(monkeypatch):
    assert isinstance(ServiceClient("users", caller="orders").transport, InProcessCallTransport)

    monkeypatch.setenv("USERS_SERVICE_URL", "http://users.internal:8000")
    client = ServiceClient("users", caller="orders")
    assert isinstance(client.transport, HttpCallTransport)
    assert client.base_url() == "http://users.internal:8000"


@unit
def test_an_in_process_call_carries_the_flow_ids_caller_and_token(customer):
    transport = RecordingTransport()
    client = ServiceClient("users", caller="orders", transport=transport)

    with flow.flow(request_id="req-1", correlation_id="checkout-1", causation_id="evt-1"):
        response = client.get(f"/customers/{customer.id}")

    assert response.status_code == 200, response.content
    assert response.json()["email"] == "ada@example.com"
    (call,) = transport.sent
    assert call["method"] == "GET"
    assert call["path"] == f"/api/users/customers/{customer.id}"
    headers = call["headers"]
    assert headers["X-Request-ID"] == "req-1"
    assert headers["X-Correlation-ID"] == "checkout-1"
    assert headers["X-Causation-ID"] == "evt-1"
    assert headers["X-Service-Name"] == "orders"
    principal = decode_service_token(headers["X-Service-Token"])
    assert principal.name == "orders"
    assert principal.has("users:read")
    # The target served the call under the caller's request id, and echoes it.
    assert response.headers["X-Request-ID"] == "req-1"


@unit
def test_an_in_process_call_is_counted_by_caller_target_method_and_status(customer):
    from prometheus_client import REGISTRY

    labels = {"target_service": "users", "method": "GET", "status": "200", "service": "orders"}
    before = REGISTRY.get_sample_value("service_call_duration_seconds_count", labels) or 0

    ServiceClient("users", caller="orders").get(f"/customers/{customer.id}").raise_for_status()

    assert REGISTRY.get_sample_value("service_call_duration_seconds_count", labels) == before + 1


@unit
def test_a_path_no_view_serves_is_a_404_problem_not_an_exception():
    response = ServiceClient("users", caller="orders").get("/no/such/thing")

    assert response.status_code == 404
    assert response.json()["status"] == 404


@unit
def test_a_view_that_fails_unexpectedly_answers_500_and_raises_nothing_into_the_caller(
    customer, monkeypatch
):
    from contexts.users import queries

    def broken(**kwargs):
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(queries, "customer_get", broken)

    response = ServiceClient("users", caller="orders").get(f"/customers/{customer.id}")

    assert response.status_code == 500
    assert response.json()["status"] == 500
    assert "disk" not in response.content.decode()  # no internals leak to the caller
    with pytest.raises(ServiceError):
        response.raise_for_status()


@unit
def test_a_call_without_a_running_flow_gets_fresh_ids(customer):
    transport = RecordingTransport()

    ServiceClient("users", caller="orders", transport=transport).get(f"/customers/{customer.id}")

    headers = transport.sent[0]["headers"]
    assert uuid.UUID(headers["X-Request-ID"])
    assert uuid.UUID(headers["X-Correlation-ID"])


@unit
def test_a_caller_without_the_permission_is_refused_with_403(customer, settings):
    assert "users:read" not in grants_of("analytics")

    response = ServiceClient("users", caller="analytics").get(f"/customers/{customer.id}")

    assert response.status_code == 403
    assert response.headers["Content-Type"] == "application/problem+json"
    with pytest.raises(ServiceError) as raised:
        response.raise_for_status()
    assert raised.value.status == 403


@unit
def test_an_unknown_resource_is_a_404_the_caller_can_tell_apart(customer):
    client = ServiceClient("users", caller="orders")

    response = client.get(f"/customers/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["status"] == 404
    assert client.get(f"/customers/{customer.id}").raise_for_status().ok


@unit
def test_an_explicit_service_token_from_the_environment_wins(customer, monkeypatch):
    monkeypatch.setenv("ANALYTICS_SERVICE_TOKEN", issue_service_token("analytics", ["users:read"]))

    response = ServiceClient("users", caller="analytics").get(f"/customers/{customer.id}")

    assert response.status_code == 200
