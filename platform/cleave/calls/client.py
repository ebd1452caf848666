"""
The service client: call another context's published HTTP API.

    ServiceClient("inventory", caller="orders").call(inventory.RESERVATION_CREATE, json={...})

Contexts call the operations of each other's contracts (`call()`, which checks
the call against them first, see `cleave.contracts`); `request()` and its
shorthands take a raw path, for the platform's own calls and tests.

When the target context runs in this process the call is dispatched through
Django's URL routing to the view without a socket (the same authentication,
permissions, serializers and status codes as over HTTP). The middleware stack,
which serves browsers and the outside world (sessions, CSRF, static files,
security headers), is left out; what it would do for a service call is done
here: the flow ids are taken from the headers, a server span is opened, and
the call is timed in `service_call_duration_seconds` (cleave.observability.metrics). When it
runs elsewhere
(`<LABEL>_SERVICE_URL`, or CLEAVE_CONTEXTS leaves it out) the call goes over
HTTP with urllib3. Either way the request carries `X-Request-ID`,
`X-Correlation-ID`, `X-Causation-ID`, `X-Service-Name` and a short-lived
service token with the caller's granted permissions.

Every call goes through the caller's circuit breaker for the target (in-process
calls too, so both deployments behave alike) and, when idempotent (GET, or
carrying `Idempotency-Key`, which the client adds to every mutating call that
has none), is retried on technical failures inside one budget
(`CLEAVE_SERVICE_TIMEOUT`), each attempt at most `CLEAVE_BREAKER_CALL_TIMEOUT`.
Over HTTP, calls are spread round-robin over the target's healthy instances
(`cleave.calls.discovery`), on keep-alive connections kept per process.
See docs/resilience.md.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

import urllib3
from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http.response import HttpResponseBase
from django.urls import resolve
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from cleave.auth.tokens import SERVICE_TOKEN_HEADER, service_token_for
from cleave.calls import breaker as breakers
from cleave.calls import discovery
from cleave.calls.operations import check_call, grants_of
from cleave.calls.retry import Budget, RetryPolicy, call_with_retries
from cleave.core import db, flow
from cleave.core.declarations import ContractViolation, Operation
from cleave.core.errors import (
    CircuitOpen,
    NoHealthyInstances,
    ServiceError,
    ServiceUnavailable,
    is_technical_status,
)
from cleave.core.registry import alias_for, is_local
from cleave.observability import logs, metrics, tracing
from cleave.observability.metrics import SERVICE_CALL_DURATION

__all__ = [
    "CircuitOpen",
    "ContractViolation",
    "NoHealthyInstances",
    "ServiceClient",
    "ServiceError",
    "ServiceResponse",
    "ServiceUnavailable",
]

logger = logging.getLogger(__name__)


@dataclass
class ServiceResponse:
    service: str
    status_code: int
    content: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        if not self.content:
            return None
        return jsonlib.loads(self.content)

    @property
    def ok(self) -> bool:
        return 200 <= self.status_code < 300

    def raise_for_status(self) -> ServiceResponse:
        if not self.ok:
            try:
                body = self.json()
            except ValueError:
                body = self.content[:500].decode("utf-8", "replace")
            raise ServiceError(self.service, self.status_code, body)
        return self


class CallTransport:
    """How a service call reaches its target: one attempt, within `timeout` seconds."""

    def send(
        self,
        client: ServiceClient,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        params: dict[str, Any] | None,
        timeout: float,
    ) -> ServiceResponse:
        raise NotImplementedError(".send() must be overridden")


class InProcessCallTransport(CallTransport):
    """Dispatch to the target's view in this process: no socket, same URL routing and views."""

    def send(self, client, method, path, body, headers, params, timeout):
        # `timeout` cannot interrupt a view running in this thread; the
        # breaker still counts what the view answers
        payload = body or b""
        environ = {
            "REQUEST_METHOD": method,
            "PATH_INFO": path,
            "SCRIPT_NAME": "",
            "QUERY_STRING": urlencode(params or {}, doseq=True),
            "SERVER_NAME": "localhost",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_HOST": "localhost",
            "CONTENT_TYPE": "application/json",
            "CONTENT_LENGTH": str(len(payload)),
            "wsgi.input": BytesIO(payload),
            "wsgi.url_scheme": "http",
            "wsgi.errors": BytesIO(),
            "wsgi.version": (1, 0),
            "wsgi.multithread": True,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        for name, value in headers.items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        request = WSGIRequest(environ)
        try:
            response = self._dispatch(request, method, path)
            content = b"".join(response) if response.streaming else response.content
        finally:
            # a pooled connection of the target's alias goes back to its pool
            # now, not when the caller's request ends
            db.release(alias_for(client.service))
        return ServiceResponse(
            service=client.service,
            status_code=response.status_code,
            content=content,
            headers={key: value for key, value in response.items()},
        )

    @staticmethod
    def _dispatch(request: WSGIRequest, method: str, path: str) -> HttpResponseBase:
        """
        Resolve and call the view as Django's handler would, minus the middleware.

        No request signals are sent either: `request_finished` would close the
        caller's database connections in the middle of its work.
        """
        with (
            logs.request_flow(request) as ids,
            tracing.tracer().start_as_current_span(
                f"{method} {path}",
                kind=SpanKind.SERVER,
                attributes={"http.method": method, "http.target": path, "cleave.in_process": True},
            ) as span,
        ):
            try:
                match = resolve(path)
                request.resolver_match = match
                response = match.func(request, *match.args, **match.kwargs)
                if hasattr(response, "render") and callable(response.render):
                    response = response.render()
            except Exception as exc:
                response = response_for_exception(request, exc)
            span.set_attribute("http.status_code", response.status_code)
            response[logs.REQUEST_ID_HEADER] = ids.request_id
        return response


class HttpCallTransport(CallTransport):
    """
    HTTP with urllib3, to an instance the balancer chooses.

    One pool manager per process keeps a few keep-alive connections per
    instance, so a call costs no new connection. urllib3 rather than
    `requests` (which is built on it): a service call needs none of what
    `requests` adds (sessions' cookies, redirects, proxies from the
    environment, hooks), and that layer cost about 0.4 ms a call, a quarter
    of a hop (bench/README.md, "The service hop"). An instance that refuses the
    connection or does not answer in time is ejected from the balancer.
    """

    _pools: tuple[int, urllib3.PoolManager] | None = None
    _pools_lock = threading.Lock()

    @classmethod
    def pools(cls) -> urllib3.PoolManager:
        """This process's pool manager (a forked child makes its own)."""
        current = cls._pools
        if current is None or current[0] != os.getpid():
            with cls._pools_lock:
                current = cls._pools
                if current is None or current[0] != os.getpid():
                    manager = urllib3.PoolManager(num_pools=32, maxsize=8, retries=False)
                    current = cls._pools = (os.getpid(), manager)
        return current[1]

    def send(self, client, method, path, body, headers, params, timeout):
        balancer = client.balancer()
        base = balancer.choose(client.service)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute("url.full", base + path)
            span.set_attribute("server.address", base.split("://", 1)[-1])
        url = base + path
        if params:
            url += "?" + urlencode(params, doseq=True)
        try:
            response = self.pools().request(
                method,
                url,
                body=body,
                headers={**headers, "Content-Type": "application/json"},
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            balancer.failed(base)
            raise ServiceUnavailable(client.service, message=f"{client.service}: {exc}") from exc
        return ServiceResponse(
            service=client.service,
            status_code=response.status,
            content=response.data,
            headers=dict(response.headers),
        )


class _TechnicalAnswer(ServiceError):
    """A 5xx or 429 answer, raised so the retry policy sees it; the last one is returned."""

    def __init__(self, response: ServiceResponse) -> None:
        super().__init__(response.service, response.status_code, None)
        self.response = response


_breakers = breakers.Registry(
    listeners=(breakers.log_transition, metrics.record_circuit_transition),
    on_create=metrics.record_circuit_created,
)
_balancers: dict[str, discovery.Balancer] = {}
_balancers_lock = threading.Lock()


def breaker_for(caller: str, target: str) -> breakers.CircuitBreaker:
    """This process's breaker for calls from `caller` to `target`."""
    return _breakers.get(caller, target)


def circuit_breakers() -> list[breakers.CircuitBreaker]:
    return _breakers.all()


def reset_resilience() -> None:
    """Forget every breaker and balancer of this process (tests, and settings changes)."""
    _breakers.clear()
    with _balancers_lock:
        for balancer in _balancers.values():
            balancer.stop()
        _balancers.clear()


def balancer() -> discovery.Balancer:
    """This process's balancer for the configured discovery (`CLEAVE_DISCOVERY`)."""
    kind = settings.CLEAVE_DISCOVERY
    current = _balancers.get(kind)
    if current is None:
        with _balancers_lock:
            current = _balancers.get(kind)
            if current is None:
                current = _balancers[kind] = discovery.Balancer(
                    discovery.make_source(kind),
                    probe_interval=settings.CLEAVE_DISCOVERY_PROBE_INTERVAL,
                )
    return current


IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _client_span(client: ServiceClient, method: str, path: str):
    """A CLIENT span per attempt, with the HTTP semantic-convention attributes."""
    return tracing.tracer().start_as_current_span(
        f"{method} {client.service}",
        kind=SpanKind.CLIENT,
        attributes={
            "http.request.method": method,
            "url.path": path,
            "peer.service": client.service,
            "cleave.caller": client.caller,
            "cleave.in_process": isinstance(client.transport, InProcessCallTransport),
        },
    )


class ServiceClient:
    """A client for one context's API, acting as the `caller` context."""

    def __init__(
        self,
        service: str,
        *,
        caller: str,
        timeout: float | None = None,
        transport: CallTransport | None = None,
    ) -> None:
        self.service = service
        self.caller = caller
        self.timeout = timeout if timeout is not None else settings.CLEAVE_SERVICE_TIMEOUT
        self.transport = transport or self._choose_transport()

    def _choose_transport(self) -> CallTransport:
        if is_local(self.service) and not discovery.service_urls(self.service):
            return InProcessCallTransport()
        return HttpCallTransport()

    def balancer(self) -> discovery.Balancer:
        return balancer()

    def base_url(self) -> str:
        """The base URL the next HTTP call would go to."""
        return self.balancer().choose(self.service)

    def prefix(self) -> str:
        return f"/api/{self.service}"

    def _token(self) -> str:
        explicit = os.environ.get(f"{self.caller.upper()}_SERVICE_TOKEN")
        if explicit:
            return explicit
        return service_token_for(self.caller, grants_of(self.caller))

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> ServiceResponse:
        current = flow.current()
        all_headers = {
            "Accept": "application/json",
            "X-Request-ID": current.request_id or flow.new_id(),
            "X-Correlation-ID": current.correlation_id or flow.new_id(),
            "X-Service-Name": self.caller,
            SERVICE_TOKEN_HEADER: self._token(),
        }
        if current.causation_id:
            all_headers["X-Causation-ID"] = current.causation_id
        if idempotency_key:
            all_headers["Idempotency-Key"] = idempotency_key
        all_headers.update(headers or {})
        method = method.upper()
        if method not in IDEMPOTENT_METHODS and "Idempotency-Key" not in all_headers:
            # the same key on every attempt: a retried call takes effect once
            all_headers["Idempotency-Key"] = f"call:{uuid.uuid4()}"
        body = None if json is None else jsonlib.dumps(json, cls=DjangoJSONEncoder).encode()
        full_path = self.prefix() + (path if path.startswith("/") else "/" + path)
        breaker = breaker_for(self.caller, self.service)
        budget = Budget(self.timeout)
        per_attempt = settings.CLEAVE_BREAKER_CALL_TIMEOUT

        def attempt() -> ServiceResponse:
            permit = breaker.allow()
            ok = True
            with _client_span(self, method, full_path) as span:
                sent = dict(all_headers)
                propagate.inject(sent)  # traceparent: the callee continues this span
                try:
                    response = self.transport.send(
                        self,
                        method,
                        full_path,
                        body,
                        sent,
                        params,
                        budget.attempt_timeout(per_attempt),
                    )
                except ServiceUnavailable as exc:
                    ok = False
                    span.set_attribute("error.type", type(exc).__name__)
                    raise
                finally:
                    if not ok:
                        permit.record(False)
                span.set_attribute("http.response.status_code", response.status_code)
            if is_technical_status(response.status_code):
                permit.record(False)
                raise _TechnicalAnswer(response)
            permit.record(True)
            return response

        started = time.perf_counter()
        status = "unavailable"
        try:
            try:
                response = call_with_retries(
                    attempt,
                    budget=budget,
                    policy=RetryPolicy.from_settings(),
                    idempotent="Idempotency-Key" in all_headers or method in IDEMPOTENT_METHODS,
                )
            except _TechnicalAnswer as exc:
                response = exc.response  # the last answer: the caller's raise_for_status decides
            status = str(response.status_code)
        except CircuitOpen:
            status = "circuit_open"
            raise
        finally:
            SERVICE_CALL_DURATION.labels(self.service, method, status, self.caller).observe(
                time.perf_counter() - started
            )
        logger.debug("%s %s %s -> %s", self.caller, method, full_path, response.status_code)
        return response

    def call(
        self,
        operation: Operation,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        idempotency_key: str | None = None,
        **path_params: Any,
    ) -> ServiceResponse:
        """
        Make one operation of the target's contract (`cleave.contracts`):

            client.call(inventory.RESERVATION_RELEASE, reservation_id=rid, json={...})

        Before anything is sent, the operation must be one the target publishes
        and admits the caller, and the path parameters, body and query must
        match the target's OpenAPI document; otherwise `ContractViolation` (a
        bug in the caller, never retried).
        """
        check_call(operation, caller=self.caller, target=self.service)
        return self.request(
            operation.method,
            operation.build_path(path_params),
            json=operation.request_body(json),
            params=operation.query_params(params),
            headers=headers,
            idempotency_key=idempotency_key,
        )

    def get(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("DELETE", path, **kwargs)
