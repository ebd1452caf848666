"""
The service client under failure: per-attempt timeouts inside a budget,
retries, the circuit breaker per target (in-process calls too), round-robin
over several instances, and what the API answers meanwhile. Targets are small
HTTP servers on the loopback, started and stopped by each test.
"""

from __future__ import annotations

import http.server
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import OperationalError

from cleave.calls.client import CircuitOpen, ServiceClient, ServiceUnavailable, breaker_for
from cleave.observability import metrics
from cleave.testing import unit


class Target:
    """A loopback HTTP server answering every request with `status` (or hanging)."""

    def __init__(self, status: int = 200, *, hang: float = 0.0) -> None:
        self.status = status
        self.hang = hang
        self.requests: list[tuple[str, str, dict]] = []
        target = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                target.requests.append((self.command, self.path, dict(self.headers)))
                if target.hang:
                    time.sleep(target.hang)
                body = json.dumps({"path": self.path, "detail": "answer"}).encode()
                self.send_response(target.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Target:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def dead_url() -> str:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def fast(settings):
    """Short timeouts and retries, so the failure paths take milliseconds."""
    settings.CLEAVE_SERVICE_TIMEOUT = 1.0
    settings.CLEAVE_BREAKER_CALL_TIMEOUT = 0.3
    settings.CLEAVE_RETRY_BASE = 0.001
    settings.CLEAVE_RETRY_MAX = 0.002
    return settings


@contextmanager
def targeting(monkeypatch, label: str, *urls: str) -> Iterator[None]:
    monkeypatch.setenv(f"{label.upper()}_SERVICE_URL", ",".join(urls))
    yield


def test_a_failing_target_is_retried_then_its_answer_returned(monkeypatch, fast):
    with Target(500) as target, targeting(monkeypatch, "catalog", target.url):
        response = ServiceClient("catalog", caller="orders").get("/products/1")

    assert response.status_code == 500
    assert len(target.requests) == 3  # CLEAVE_RETRY_ATTEMPTS


def test_a_refusal_is_not_retried(monkeypatch, fast):
    with Target(409) as target, targeting(monkeypatch, "inventory", target.url):
        response = ServiceClient("inventory", caller="orders").post("/reservations", json={})

    assert response.status_code == 409
    assert len(target.requests) == 1


def test_every_mutating_call_carries_one_idempotency_key_for_all_its_attempts(monkeypatch, fast):
    with Target(503) as target, targeting(monkeypatch, "inventory", target.url):
        ServiceClient("inventory", caller="orders").post("/reservations", json={})

    keys = {headers.get("Idempotency-Key") for _, _, headers in target.requests}
    assert len(target.requests) == 3
    assert len(keys) == 1
    assert None not in keys


def test_a_hanging_target_costs_no_more_than_the_budget(monkeypatch, fast):
    with Target(200, hang=2.0) as target, targeting(monkeypatch, "catalog", target.url):
        started = time.perf_counter()
        with pytest.raises(ServiceUnavailable):
            ServiceClient("catalog", caller="orders").get("/products/1")
        elapsed = time.perf_counter() - started

    assert elapsed < fast.CLEAVE_SERVICE_TIMEOUT + 0.3
    assert len(target.requests) >= 2  # each attempt timed out at 0.3 s, then another


def test_the_circuit_opens_and_then_refuses_without_a_network_attempt(monkeypatch, fast):
    with Target(503) as target, targeting(monkeypatch, "catalog", target.url):
        client = ServiceClient("catalog", caller="orders")
        client.get("/products/1")  # 3 failed attempts
        client.get("/products/1")  # 2 more: 5 of 5 failed, the circuit opens
        attempts = len(target.requests)

        with pytest.raises(CircuitOpen) as refused:
            client.get("/products/1")

    assert breaker_for("orders", "catalog").state == "open"
    assert len(target.requests) == attempts  # nothing was sent
    assert 0 < refused.value.retry_after <= fast.CLEAVE_BREAKER_RESET_TIMEOUT


def test_an_open_circuit_is_reported_as_a_metric_and_in_readiness(monkeypatch, fast, client):
    with Target(503) as target, targeting(monkeypatch, "catalog", target.url):
        service = ServiceClient("catalog", caller="orders")
        service.get("/products/1")
        service.get("/products/1")

    gauge = metrics.CIRCUIT_STATE.labels("orders", "catalog")
    assert gauge._value.get() == 1
    ready = client.get("/ready").json()
    assert ready["circuits"]["orders->catalog"]["state"] == "open"


def test_after_the_reset_timeout_a_trial_call_closes_the_circuit(monkeypatch, fast):
    fast.CLEAVE_BREAKER_RESET_TIMEOUT = 0.2
    with Target(503) as target, targeting(monkeypatch, "catalog", target.url):
        client = ServiceClient("catalog", caller="orders")
        client.get("/products/1")
        client.get("/products/1")
        assert breaker_for("orders", "catalog").state == "open"

        target.status = 200
        time.sleep(0.25)
        response = client.get("/products/1")

    assert response.status_code == 200
    assert breaker_for("orders", "catalog").state == "closed"


@unit
def test_with_the_circuit_open_the_api_answers_503_with_retry_after_at_once(api, monkeypatch, fast):
    from cleave.testing import customer_headers

    fast.CLEAVE_BREAKER_RESET_TIMEOUT = 30
    with Target(503) as target, targeting(monkeypatch, "catalog", target.url):
        client = ServiceClient("catalog", caller="orders")
        client.get("/products/1")
        client.get("/products/1")
        sent = len(target.requests)

        started = time.perf_counter()
        response = api.post(
            "/api/orders/cart/items",
            {"product_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "quantity": 1},
            format="json",
            headers=customer_headers("5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b"),
        )
        elapsed = time.perf_counter() - started

    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert 1 <= int(response["Retry-After"]) <= 30
    assert response.json()["type"].endswith("/dependency-unavailable")
    assert len(target.requests) == sent
    assert elapsed < 0.5


def test_calls_go_round_robin_and_skip_a_dead_instance(monkeypatch, fast):
    dead = dead_url()
    with (
        Target(200) as first,
        Target(200) as second,
        targeting(monkeypatch, "catalog", first.url, dead, second.url),
    ):
        client = ServiceClient("catalog", caller="orders")
        answers = [client.get(f"/products/{n}").status_code for n in range(9)]

    assert answers == [200] * 9
    assert len(first.requests) >= 3
    assert len(second.requests) >= 3
    assert client.balancer().ejected() == {dead}
    assert breaker_for("orders", "catalog").state == "closed"


@unit
def test_in_process_calls_go_through_the_same_breaker(monkeypatch, fast):
    from contexts.users.api import views

    def unavailable(*args, **kwargs):
        raise OperationalError("too many clients already")

    monkeypatch.setattr(views.CustomerDetailView, "get", unavailable)
    client = ServiceClient("users", caller="orders")

    answers = [
        client.get("/customers/5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b").status_code for _ in range(2)
    ]

    assert answers == [503, 503]  # database at its limit: a 503 problem, never a 500
    assert breaker_for("orders", "users").state == "open"
    with pytest.raises(CircuitOpen):
        client.get("/customers/5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b")


@unit
def test_a_database_at_its_limit_is_a_503_problem_not_a_500(api, monkeypatch):
    from contexts.catalog.api import views

    def exhausted(*args, **kwargs):
        raise OperationalError("connection failed: FATAL: sorry, too many clients already")

    monkeypatch.setattr(views.CategoryListView, "get", exhausted)

    response = api.get("/api/catalog/categories")

    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert response["Retry-After"] == "2"
    assert response.json()["type"].endswith("/database-unavailable")
    assert "too many clients" not in response.content.decode()  # the driver's text stays inside


@unit
def test_with_consul_calls_reach_a_passing_instance_and_none_passing_is_a_503(
    api, monkeypatch, fast
):
    from cleave.calls.consul import register
    from cleave.testing import customer_headers
    from tests.support.consul_standin import ConsulStandIn

    fast.CLEAVE_DISCOVERY = "consul"
    fast.CLEAVE_CONSUL_CACHE_SECONDS = 0
    monkeypatch.delenv("CATALOG_SERVICE_URL", raising=False)
    with ConsulStandIn(check_interval=0.05) as consul, Target(200) as target:
        fast.CONSUL_HTTP_ADDR = consul.addr
        monkeypatch.setattr("cleave.calls.client.is_local", lambda label: label != "catalog")
        service_id = register("catalog", target.url, addr=consul.addr)

        def passing():
            return consul.status(service_id) == "passing"

        deadline = time.monotonic() + 5
        while not passing() and time.monotonic() < deadline:
            time.sleep(0.05)
        response = ServiceClient("catalog", caller="orders").get("/products/1")
        assert response.status_code == 200
        assert target.requests[-1][1] == "/api/catalog/products/1"

        target.status = 500  # its health check goes critical
        deadline = time.monotonic() + 5
        while passing() and time.monotonic() < deadline:
            time.sleep(0.05)
        answer = api.post(
            "/api/orders/cart/items",
            {"product_id": "9a1c6f2e-3b4d-4e5f-8a9b-0c1d2e3f4a5b", "quantity": 1},
            format="json",
            headers=customer_headers("5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b"),
        )

    assert answer.status_code == 503, answer.content
    assert answer.json()["detail"] == "No healthy instances of catalog; try again shortly."
