"""
Request ids, log context, health and readiness probes.

Every response carries `X-Request-ID` (the client's, if it sent a sane one).
The request id, the correlation id of the business flow and the current trace
id are attached to every log record, so JSON logs can be joined across contexts.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable, Iterator

from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET

from cleave import conf, flow

_CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}


def record_circuit_created(breaker) -> None:
    """A new breaker starts closed: the gauge shows every target this process calls."""
    from cleave.metrics import CIRCUIT_STATE

    CIRCUIT_STATE.labels(breaker.caller, breaker.target).set(0)


def record_circuit_transition(breaker, old: str, new: str) -> None:
    """A circuit breaker listener: the state gauge and the transition counter."""
    from cleave.metrics import CIRCUIT_STATE, CIRCUIT_TRANSITIONS

    CIRCUIT_STATE.labels(breaker.caller, breaker.target).set(_CIRCUIT_VALUES.get(new, 0))
    CIRCUIT_TRANSITIONS.labels(breaker.caller, breaker.target, new).inc()


REQUEST_ID_HEADER = "X-Request-ID"
CORRELATION_HEADER = "X-Correlation-ID"
CAUSATION_HEADER = "X-Causation-ID"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _sane(value: str | None) -> str | None:
    return value if value and _SAFE_ID.match(value) else None


class RequestContextMiddleware:
    """Set the flow ids for the request and echo `X-Request-ID` on the response."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with request_flow(request) as ids:
            _annotate_server_span(ids)
            response = self.get_response(request)
        response[REQUEST_ID_HEADER] = ids.request_id
        return response


def _annotate_server_span(ids: flow.Flow) -> None:
    """The flow ids on the server span the Django instrumentation opened."""
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("cleave.correlation_id", ids.correlation_id or "")
        span.set_attribute("cleave.request_id", ids.request_id or "")


@contextlib.contextmanager
def request_flow(request: HttpRequest) -> Iterator[flow.Flow]:
    """Run a block with the flow ids a request carries (new ones where it carries none)."""
    request_id = _sane(request.headers.get(REQUEST_ID_HEADER)) or flow.new_id()
    correlation_id = _sane(request.headers.get(CORRELATION_HEADER)) or request_id
    causation_id = _sane(request.headers.get(CAUSATION_HEADER)) or request_id
    request.request_id = request_id  # type: ignore[attr-defined]
    with flow.flow(
        request_id=request_id, correlation_id=correlation_id, causation_id=causation_id
    ) as ids:
        yield ids


class LogContextFilter(logging.Filter):
    """
    Attach to every log record what joins it to others: the request,
    correlation and causation ids of the flow, the current trace and span ids,
    this process's service name, and the bounded context the logger belongs to
    (`contexts.<label>...`).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        from django.conf import settings

        current = flow.current()
        request = getattr(record, "request", None)
        record.request_id = current.request_id or getattr(request, "request_id", None)
        record.correlation_id = current.correlation_id
        record.causation_id = current.causation_id
        record.trace_id, record.span_id = _trace_ids()
        record.service = settings.CLEAVE_SERVICE_NAME
        if not getattr(record, "context", None):
            parts = record.name.split(".")
            record.context = parts[1] if len(parts) > 1 and parts[0] == "contexts" else None
        return True


def _trace_ids() -> tuple[str | None, str | None]:
    from opentelemetry import trace

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


class ProbeMiddleware:
    """
    Answer `GET /health` and `GET /ready` before anything looks at the Host
    header: Kubernetes probes a pod by its IP, which no `DJANGO_ALLOWED_HOSTS`
    lists, and Django would answer 400. Placed first in MIDDLEWARE; every
    other path goes on through the stack (and the host check) as usual.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.probes = {"/health": health, "/ready": ready}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is None or request.method != "GET":
            return self.get_response(request)
        with request_flow(request) as ids:
            response = probe(request)
        response[REQUEST_ID_HEADER] = ids.request_id
        return response


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def _check_database(alias: str) -> dict[str, object]:
    started = time.perf_counter()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready", never a 500
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@require_GET
def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: every local database alias (and the broker, when used) answers."""
    from django.conf import settings

    checks: dict[str, dict[str, object]] = {}
    for alias in connections.settings:
        checks[f"database:{alias}"] = _check_database(alias)
    if settings.CLEAVE_EVENT_TRANSPORT != "inprocess":
        checks["broker"] = _check_broker(settings.CELERY_BROKER_URL)
    healthy = all(check["status"] == "ok" for check in checks.values())
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable"}
    from cleave.metrics import internal_caller

    if internal_caller(request):
        # the aliases, errors and circuits are for operators and probes, not the world
        body["checks"] = checks
        # what this process's calls to other contexts meet; an open circuit
        # does not make this process unready (it still serves what it can)
        body["circuits"] = _circuits()
    return JsonResponse(body, status=200 if healthy else 503)


def _circuits() -> dict[str, dict[str, object]]:
    from cleave.client import circuit_breakers

    return {
        f"{breaker.caller}->{breaker.target}": {
            "state": breaker.state,
            "retry_after": round(breaker.retry_after(), 1),
        }
        for breaker in circuit_breakers()
    }


def _check_broker(url: str) -> dict[str, object]:
    from kombu import Connection

    started = time.perf_counter()
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure means "not ready"
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


# --- tracing ----------------------------------------------------------------------

_tracing_ready = False


def setup_tracing(service_name: str) -> None:
    """
    Install the OpenTelemetry tracer provider and instrument Django, once.

    Spans get ids whether or not they are exported, so logs and event envelopes
    always carry trace context. `OTEL_TRACES_EXPORTER=console` prints spans;
    `otlp` exports them when opentelemetry-exporter-otlp is installed; `none`
    (the default) records none (they are sampled out unless a caller's trace
    is sampled, or `OTEL_TRACES_SAMPLER` says otherwise). `CLEAVE_TRACING=off`
    disables it all.
    """
    global _tracing_ready
    import os

    from .env import env_choice

    if _tracing_ready or not conf.value("CLEAVE_TRACING"):
        return
    from opentelemetry import trace
    from opentelemetry.instrumentation.django import DjangoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter

    exporter_name = env_choice(
        "OTEL_TRACES_EXPORTER", default="none", choices=("none", "console", "otlp")
    )
    sampler = None  # the SDK's: OTEL_TRACES_SAMPLER, else parent-based always-on
    if exporter_name not in {"console", "otlp"} and not os.environ.get("OTEL_TRACES_SAMPLER"):
        # Nothing exports spans: they keep their ids (logs, envelopes) but
        # record nothing, which costs a fraction of a recorded span.
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

        sampler = ParentBased(ALWAYS_OFF)
    attributes = {"service.name": service_name, "service.version": _version()}
    environment = conf.value("CLEAVE_ENVIRONMENT")
    if environment:
        attributes["deployment.environment"] = environment
    # OTEL_RESOURCE_ATTRIBUTES adds to these (Resource.create merges it)
    provider = TracerProvider(resource=Resource.create(attributes), sampler=sampler)
    if exporter_name == "console":
        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    elif exporter_name == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    # producer and consumer spans of every Celery task (saga runs, event
    # messages), the trace context carried in the message headers
    from opentelemetry.instrumentation.celery import CeleryInstrumentor

    CeleryInstrumentor().instrument()
    # after ProbeMiddleware (first in MIDDLEWARE): probes are answered before
    # the instrumentation reads the Host header, and are not traced
    DjangoInstrumentor().instrument(middleware_position=1)
    _tracing_ready = True


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cleave")
    except PackageNotFoundError:  # run from a tree that was not installed
        return "0+unknown"


_tracer: tuple[object, object] | None = None


def tracer():
    """The platform's tracer (made once per tracer provider)."""
    global _tracer
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, trace.get_tracer("cleave"))
    return _tracer[1]


def span_from_traceparent(name: str, traceparent: str | None, *, kind=None, links=(), **attributes):
    """A span continuing the trace whose W3C `traceparent` travelled with an event or a saga."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract({"traceparent": traceparent}) if traceparent else None
    return tracer().start_as_current_span(
        name,
        context=parent,
        kind=kind or SpanKind.INTERNAL,
        links=list(links),
        attributes=attributes,
    )


def current_traceparent() -> str | None:
    """The W3C `traceparent` of the current span, to store with what outlives it."""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def link_to(traceparent: str | None):
    """A span link to the span a stored `traceparent` names (None when it names none)."""
    from opentelemetry import propagate, trace

    if not traceparent:
        return None
    context = trace.get_current_span(propagate.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None
