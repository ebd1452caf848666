"""
OpenTelemetry tracing: the tracer provider of this process (`setup_tracing`),
spans continued from a `traceparent`, and the flow ids on the server span.
"""

from __future__ import annotations

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind

from cleave.core import conf, flow
from cleave.core.registry import release


def _annotate_server_span(ids: flow.Flow) -> None:
    """The flow ids on the server span the Django instrumentation opened."""

    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute("cleave.correlation_id", ids.correlation_id or "")
        span.set_attribute("cleave.request_id", ids.request_id or "")


# --- tracing ----------------------------------------------------------------------

_tracing_ready = False


def setup_tracing(service_name: str) -> None:
    """
    Install the OpenTelemetry tracer provider and instrument Django, once:
    with OpenTelemetry's Django middleware when spans are recorded, with
    `ServerSpanMiddleware` when they are not.

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

    exporter_name = conf.value("OTEL_TRACES_EXPORTER")
    sampler = None  # the SDK's: OTEL_TRACES_SAMPLER, else parent-based always-on
    recording = exporter_name in {"console", "otlp"} or bool(conf.value("OTEL_TRACES_SAMPLER"))
    if not recording:
        # Nothing exports spans: they keep their ids (logs, envelopes) but
        # record nothing, which costs a fraction of a recorded span.
        from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

        sampler = ParentBased(ALWAYS_OFF)
    attributes = {"service.name": service_name, "service.version": release()}
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
    if recording:
        DjangoInstrumentor().instrument(middleware_position=1)
    else:
        _install_middleware(SERVER_SPAN_MIDDLEWARE, position=1)
    _tracing_ready = True


# --- the server span when nothing records ------------------------------------------------

SERVER_SPAN_MIDDLEWARE = "cleave.observability.tracing.ServerSpanMiddleware"


def _install_middleware(path: str, *, position: int) -> None:
    from django.conf import settings

    if path not in settings.MIDDLEWARE:
        middleware = list(settings.MIDDLEWARE)
        middleware.insert(position, path)
        settings.MIDDLEWARE = middleware


class _MetaGetter:
    """A request's `traceparent` and `tracestate` headers, as `request.META` names them."""

    def get(self, carrier: dict, key: str) -> list[str] | None:
        value = carrier.get("HTTP_" + key.upper().replace("-", "_"))
        return [value] if value is not None else None

    def keys(self, carrier: dict) -> list[str]:
        return [key[5:].lower().replace("_", "-") for key in carrier if key.startswith("HTTP_")]


_META_GETTER = _MetaGetter()


class ServerSpanMiddleware:
    """
    The server span of a request when nothing records spans (no exporter, no
    sampler chosen): the trace continued from the request's `traceparent`, or
    a new one, current while the request is served, so that its logs, events
    and calls carry it. It replaces OpenTelemetry's Django middleware in that
    case, which for a span that is thrown away still resolved the route again
    for the span's name, collected the request's attributes and recorded its
    metrics: 0.39 ms a request, a third of a cached product list
    (bench/README.md, "Read path"). A caller's sampled trace still records
    here, with the method, the route and the status.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        parent = propagate.extract(request.META, getter=_META_GETTER)
        with tracer().start_as_current_span(
            request.method or "HTTP", context=parent, kind=SpanKind.SERVER
        ) as span:
            response = self.get_response(request)
            if span.is_recording():
                match = getattr(request, "resolver_match", None)
                route = "/" + match.route if match is not None and match.route else request.path
                span.update_name(f"{request.method} {route}")
                span.set_attribute("http.request.method", request.method or "")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", response.status_code)
        return response


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
