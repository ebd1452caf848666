"""
Request ids, log context and tracing. (The probes are `cleave.probes`.)

Every response carries `X-Request-ID` (the client's, if it sent a sane one).
The request id, the correlation id of the business flow and the current trace
id are attached to every log record, so JSON logs can be joined across contexts.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from cleave import conf, flow
from cleave.env import env_choice
from cleave.metrics import CIRCUIT_STATE, CIRCUIT_TRANSITIONS

_CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}


def record_circuit_created(breaker) -> None:
    """A new breaker starts closed: the gauge shows every target this process calls."""

    CIRCUIT_STATE.labels(breaker.caller, breaker.target).set(0)


def record_circuit_transition(breaker, old: str, new: str) -> None:
    """A circuit breaker listener: the state gauge and the transition counter."""

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

    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None, None
    return format(span_context.trace_id, "032x"), format(span_context.span_id, "016x")


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

    if _tracing_ready or not conf.value("CLEAVE_TRACING"):
        return
    # the SDK, its exporters and the instrumentations are loaded only when
    # tracing is on: a process with CLEAVE_TRACING=off does without them
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

    try:
        return version("cleave")
    except PackageNotFoundError:  # run from a tree that was not installed
        return "0+unknown"


_tracer: tuple[object, object] | None = None


def tracer():
    """The platform's tracer (made once per tracer provider)."""
    global _tracer

    provider = trace.get_tracer_provider()
    if _tracer is None or _tracer[0] is not provider:
        _tracer = (provider, trace.get_tracer("cleave"))
    return _tracer[1]


def span_from_traceparent(name: str, traceparent: str | None, *, kind=None, links=(), **attributes):
    """A span continuing the trace whose W3C `traceparent` travelled with an event or a saga."""

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

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier.get("traceparent")


def link_to(traceparent: str | None):
    """A span link to the span a stored `traceparent` names (None when it names none)."""

    if not traceparent:
        return None
    context = trace.get_current_span(propagate.extract({"traceparent": traceparent}))
    span_context = context.get_span_context()
    return trace.Link(span_context) if span_context.is_valid else None
