"""
What every context's REST API shares: problem details, pagination, base errors.

Every error leaves the API as RFC 9457 problem details
(`application/problem+json`), whether it came from DRF validation, an
authentication failure, an `ApplicationError` raised by a command, or Django
itself (404, 500). A command's error names its kind, never a status:
`STATUS_BY_KIND` below is the one place that gives each kind its status.
The bodies are rendered by functions that only render (`refusal_problem`,
`dependency_problem`, `drf_problem`), so that the OpenAPI document's examples
(`cleave.http.openapi`) are the answers themselves.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from django.core.exceptions import PermissionDenied, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import InterfaceError, OperationalError
from django.http import Http404, HttpResponse, JsonResponse
from django.views.csrf import csrf_failure as html_csrf_failure
from rest_framework import exceptions
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from cleave.core.errors import (
    ApplicationError,
    Conflict,
    DependencyFailed,
    Forbidden,
    Invalid,
    NoHealthyInstances,
    NotAuthenticated,
    NotFound,
    ServiceError,
    ServiceUnavailable,
    Throttled,
    Unavailable,
)

logger = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_BASE = "https://cleave.dev/problems/"


def problem(
    status_code: int,
    title: str,
    detail: str,
    *,
    code: str | None = None,
    errors: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (code or _slug(title)),
        "title": title,
        "status": status_code,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return body


def _slug(text: str) -> str:
    return "-".join(text.lower().split())


_DRF_TITLES = {
    400: "Invalid input",
    401: "Not authenticated",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    415: "Unsupported media type",
    429: "Too many requests",
}


def _flatten_errors(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """Turn DRF's nested error detail into {"field.sub": ["message", ...]}."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "non_field_errors":
                name = prefix or "non_field_errors"
            out.update(_flatten_errors(value, name))
    elif isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            out[prefix or "non_field_errors"] = [str(item) for item in detail]
        else:
            for index, item in enumerate(detail):
                out.update(_flatten_errors(item, f"{prefix}.{index}" if prefix else str(index)))
    else:
        out[prefix or "non_field_errors"] = [str(detail)]
    return out


def problem_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """
    DRF exception handler: render every error as problem details, in JSON
    whatever the view renders otherwise (the OpenAPI document's YAML) and
    whatever the client asked for (`?format=xml`, which no renderer takes).
    """
    request = context.get("request")
    if request is not None:
        request.accepted_renderer = JSONRenderer()
        request.accepted_media_type = PROBLEM_CONTENT_TYPE
    if isinstance(exc, ApplicationError):
        return _refused(exc)
    if isinstance(exc, ServiceError):
        return _dependency_failed(exc)
    if isinstance(exc, OperationalError | InterfaceError):
        return database_unavailable(exc)
    if isinstance(exc, RequestDataTooBig):
        body = problem(413, "Request too large", "The request body is larger than allowed.")
        return Response(body, status=413, content_type=PROBLEM_CONTENT_TYPE)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(
            detail=exc.message_dict if hasattr(exc, "error_dict") else exc.messages
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("Unhandled error in API view", exc_info=exc)
        body = problem(500, "Internal error", "The server failed to process the request.")
        return Response(body, status=500, content_type=PROBLEM_CONTENT_TYPE)

    response.data = drf_problem(exc, response.status_code)
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def drf_problem(exc: Exception, status_code: int) -> dict[str, Any]:
    """The problem details of a DRF exception (invalid input, not authenticated...)."""
    title = _DRF_TITLES.get(status_code, "Error")
    if isinstance(exc, exceptions.ValidationError):
        errors = _flatten_errors(exc.detail)
        detail = "The request body or parameters are invalid."
        return problem(status_code, title, detail, code="validation-error", errors=errors)
    detail = exc.detail if isinstance(exc, exceptions.APIException) else str(exc)
    if isinstance(detail, list | dict):
        detail = "; ".join(m for ms in _flatten_errors(detail).values() for m in ms)
    return problem(status_code, title, str(detail))


# The status of each kind of the domain's refusals (`cleave.core.errors`); a
# subclass answers its kind's. A refusal of no kind listed here is the request's: 400.
STATUS_BY_KIND: dict[type[ApplicationError], int] = {
    Invalid: 400,
    NotAuthenticated: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    Throttled: 429,
    DependencyFailed: 502,
    Unavailable: 503,
}


def status_for(exc: ApplicationError) -> int:
    """The HTTP status of a refusal: its kind's, from `STATUS_BY_KIND`."""
    for kind in type(exc).__mro__:
        if kind in STATUS_BY_KIND:
            return STATUS_BY_KIND[kind]
    return 400


def refusal_problem(exc: ApplicationError) -> dict[str, Any]:
    """The problem details of a refusal: its kind's status, its code, detail and errors."""
    return problem(status_for(exc), exc.title, exc.detail, code=exc.code, errors=exc.errors)


def _refused(exc: ApplicationError) -> Response:
    """A refusal as problem details, with `Retry-After` when it says how long to wait."""
    body = refusal_problem(exc)
    status_code = body["status"]
    retry_after = getattr(exc, "retry_after", None)
    headers = None
    if retry_after is not None:
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    return Response(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE, headers=headers)


def _dependency_unavailable(exc: ServiceError) -> bool:
    return isinstance(exc, ServiceUnavailable) or exc.status in (429, 503, 504)


def dependency_problem(exc: ServiceError) -> dict[str, Any]:
    """
    The problem details of another context's failure: 503 when it could not be
    reached or said it was unavailable, 502 when it answered with something unusable.
    """
    if _dependency_unavailable(exc):
        detail = f"The {exc.service} service is unavailable; try again shortly."
        if isinstance(exc, NoHealthyInstances):
            detail = f"No healthy instances of {exc.service}; try again shortly."
        return problem(503, "Service unavailable", detail, code="dependency-unavailable")
    detail = f"The {exc.service} service failed to answer this request."
    return problem(502, "Bad gateway", detail, code="dependency-failed")


def _dependency_failed(exc: ServiceError) -> Response:
    """
    Another context failed this request (`dependency_problem`). Either way it is
    not the client's input, and not an unhandled crash.
    """
    headers = None
    if _dependency_unavailable(exc):
        logger.warning("Service %s unavailable: %s", exc.service, exc)
        retry_after = getattr(exc, "retry_after", ServiceUnavailable.retry_after)
        headers = {"Retry-After": str(max(1, math.ceil(retry_after)))}
    else:
        logger.error("Service %s failed a call: %s", exc.service, exc)
    body = dependency_problem(exc)
    return Response(body, status=body["status"], content_type=PROBLEM_CONTENT_TYPE, headers=headers)


# seconds a client is told to wait when a database is at its limit
DATABASE_RETRY_AFTER = 2


def database_unavailable(exc: Exception) -> Response:
    """
    A database refused, ran out of connections, deadlocked or lost the
    connection: a technical failure that passes, not the client's fault. The
    driver's text (which may name hosts and users) stays in the log.
    """
    logger.warning("Database unavailable: %s: %s", type(exc).__name__, exc)
    body = problem(
        503,
        "Service unavailable",
        "A database this request needs is unavailable; try again shortly.",
        code="database-unavailable",
    )
    return Response(
        body,
        status=503,
        content_type=PROBLEM_CONTENT_TYPE,
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


class DatabaseUnavailableMiddleware:
    """
    The same 503 for a database failure outside DRF's views (the admin,
    sessions, authentication middleware), where Django would answer 500.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, OperationalError | InterfaceError):
            logger.warning("Database unavailable: %s: %s", type(exception).__name__, exception)
            response = problem_response(
                503,
                "Service unavailable",
                "A database this request needs is unavailable; try again shortly.",
            )
            response["Retry-After"] = str(DATABASE_RETRY_AFTER)
            return response
        return None


def problem_response(status_code: int, title: str, detail: str) -> JsonResponse:
    return JsonResponse(
        problem(status_code, title, detail), status=status_code, content_type=PROBLEM_CONTENT_TYPE
    )


def handler404(request, exception=None) -> JsonResponse:
    return problem_response(404, "Not found", f"No resource at {request.path}.")


def handler500(request) -> JsonResponse:
    return problem_response(500, "Internal error", "The server failed to process the request.")


def handler400(request, exception=None) -> JsonResponse:
    return problem_response(400, "Bad request", "The request could not be understood.")


def handler403(request, exception=None) -> JsonResponse:
    return problem_response(403, "Not allowed", "You may not access this resource.")


def csrf_failure(request, reason: str = "") -> HttpResponse:
    """
    `CSRF_FAILURE_VIEW`: a 403 problem, like every other error. Only a browser
    (an `Accept` naming `text/html`) outside `/api/` gets Django's HTML page: an
    operator whose admin form went stale. The reason stays in the log.
    """
    logger.warning("CSRF check failed for %s %s: %s", request.method, request.path, reason)
    browser = "text/html" in request.headers.get("Accept", "")
    if browser and not request.path.startswith("/api/"):
        return html_csrf_failure(request, reason=reason)
    body = problem(
        403,
        "CSRF check failed",
        "The request's CSRF token is missing or wrong. An API client authenticates "
        "with a bearer or service token instead of a session cookie.",
        code="csrf-failed",
    )
    return JsonResponse(body, status=403, content_type=PROBLEM_CONTENT_TYPE)
