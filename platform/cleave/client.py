"""
The service client: call another context's published HTTP API.

    ServiceClient("inventory", caller="orders").post("/reservations", json={...})

When the target context runs in this process the call is dispatched through
Django's URL routing to the view without a socket (the same authentication,
permissions, serializers and status codes as over HTTP). The middleware stack,
which serves browsers and the outside world (sessions, CSRF, static files,
security headers), is left out; what it would do for a service call is done
here: the flow ids are taken from the headers, a server span is opened, and
the call is counted in `cleave_service_calls` / timed in
`cleave_service_call_seconds`. When it runs elsewhere
(`<LABEL>_SERVICE_URL`, or CLEAVE_CONTEXTS leaves it out) the call goes over
HTTP with `requests`. Either way the request carries `X-Request-ID`,
`X-Correlation-ID`, `X-Causation-ID`, `X-Service-Name` and a short-lived
service token with the caller's granted permissions.
"""

from __future__ import annotations

import json as jsonlib
import logging
import os
import time
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.core.handlers.exception import response_for_exception
from django.core.handlers.wsgi import WSGIRequest
from django.core.serializers.json import DjangoJSONEncoder
from django.http.response import HttpResponseBase
from django.urls import resolve

from cleave import flow, observability
from cleave.contexts import is_local
from cleave.security import SERVICE_TOKEN_HEADER, service_token_for

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """The target answered with an error status, or could not be reached."""

    def __init__(self, service: str, status: int, body: Any, message: str = "") -> None:
        self.service = service
        self.status = status
        self.body = body
        detail = body.get("detail") if isinstance(body, dict) else None
        super().__init__(message or f"{service} answered {status}: {detail or body!r}"[:500])


class ServiceUnavailable(ServiceError):
    """The target could not be reached or did not answer in time."""


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


class Transport:
    def send(
        self,
        client: ServiceClient,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        params: dict[str, Any] | None,
    ) -> ServiceResponse:
        raise NotImplementedError(".send() must be overridden")


class InProcessTransport(Transport):
    """Dispatch to the target's view in this process: no socket, same URL routing and views."""

    def send(self, client, method, path, body, headers, params):
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
        response = self._dispatch(request, method, path)
        content = b"".join(response) if response.streaming else response.content
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
        from opentelemetry.trace import SpanKind

        with (
            observability.request_flow(request) as ids,
            observability.tracer().start_as_current_span(
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
            response[observability.REQUEST_ID_HEADER] = ids.request_id
        return response


class HttpTransport(Transport):
    """Plain HTTP with `requests`; the base URL is `<LABEL>_SERVICE_URL`."""

    def send(self, client, method, path, body, headers, params):
        import requests

        base = client.base_url()
        try:
            response = requests.request(
                method,
                base.rstrip("/") + path,
                data=body,
                headers={**headers, "Content-Type": "application/json"},
                params=params,
                timeout=client.timeout,
            )
        except requests.RequestException as exc:
            raise ServiceUnavailable(client.service, 503, None, f"{client.service}: {exc}") from exc
        return ServiceResponse(
            service=client.service,
            status_code=response.status_code,
            content=response.content,
            headers=dict(response.headers),
        )


class ServiceClient:
    """A client for one context's API, acting as the `caller` context."""

    def __init__(
        self,
        service: str,
        *,
        caller: str,
        timeout: float | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.service = service
        self.caller = caller
        self.timeout = timeout if timeout is not None else settings.CLEAVE_SERVICE_TIMEOUT
        self.transport = transport or self._choose_transport()

    def _choose_transport(self) -> Transport:
        if is_local(self.service) and not os.environ.get(f"{self.service.upper()}_SERVICE_URL"):
            return InProcessTransport()
        return HttpTransport()

    def base_url(self) -> str:
        url = os.environ.get(f"{self.service.upper()}_SERVICE_URL")
        if url:
            return url
        # Kubernetes DNS: one Service per context, named after it.
        return f"http://{self.service}:8000"

    def prefix(self) -> str:
        return f"/api/{self.service}"

    def _token(self) -> str:
        explicit = os.environ.get(f"{self.caller.upper()}_SERVICE_TOKEN")
        if explicit:
            return explicit
        grants = getattr(settings, "CLEAVE_SERVICE_GRANTS", {}).get(self.caller, [])
        return service_token_for(self.caller, grants)

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
        body = None if json is None else jsonlib.dumps(json, cls=DjangoJSONEncoder).encode()
        full_path = self.prefix() + (path if path.startswith("/") else "/" + path)
        started = time.perf_counter()
        status = "unavailable"
        try:
            response = self.transport.send(
                self, method.upper(), full_path, body, all_headers, params
            )
            status = str(response.status_code)
        finally:
            observability.SERVICE_CALL_SECONDS.labels(
                self.caller, self.service, method.upper(), status
            ).observe(time.perf_counter() - started)
        logger.debug("%s %s %s → %s", self.caller, method, full_path, response.status_code)
        return response

    def get(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> ServiceResponse:
        return self.request("DELETE", path, **kwargs)
