"""The server span when nothing records spans (tracing.ServerSpanMiddleware)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from django.test import RequestFactory
from opentelemetry import trace

from cleave.observability.tracing import SERVER_SPAN_MIDDLEWARE, ServerSpanMiddleware

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


def _served(headers: dict[str, str]):
    seen = {}

    def view(request):
        span = trace.get_current_span()
        seen["context"] = span.get_span_context()
        seen["recording"] = span.is_recording()
        return HttpResponse("ok")

    request = RequestFactory().get("/api/catalog/products", **headers)
    response = ServerSpanMiddleware(view)(request)
    assert response.status_code == 200
    return seen


def test_with_no_exporter_the_light_middleware_replaces_the_instrumentation():
    assert SERVER_SPAN_MIDDLEWARE in settings.MIDDLEWARE
    assert not any("opentelemetry" in path for path in settings.MIDDLEWARE)
    # after the probes, which answer before any span
    assert settings.MIDDLEWARE.index(SERVER_SPAN_MIDDLEWARE) == 1


def test_a_request_continues_the_callers_trace():
    seen = _served({"HTTP_TRACEPARENT": f"00-{TRACE_ID}-{PARENT}-00"})

    assert format(seen["context"].trace_id, "032x") == TRACE_ID
    assert format(seen["context"].span_id, "016x") != PARENT  # a span of its own
    assert not seen["recording"]  # nothing exports it, and the caller did not sample


def test_a_request_without_a_trace_starts_one():
    first, second = _served({}), _served({})

    assert first["context"].trace_id != 0
    assert first["context"].trace_id != second["context"].trace_id
