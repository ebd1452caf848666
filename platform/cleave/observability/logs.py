"""
Request ids, log context and tracing. (The probes are `cleave.probes`.)

Every response carries `X-Request-ID` (the client's, if it sent a sane one).
The request id, the correlation id of the business flow and the current trace
id are attached to every log record, so JSON logs can be joined across contexts.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Callable, Iterator

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from opentelemetry import trace

from cleave.core import flow
from cleave.observability.tracing import _annotate_server_span

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
