"""
The failures of a call to another context, and which of them are technical.

A *technical* failure says nothing about the request: the target could not be
reached, did not answer in time, answered 5xx or 429, its circuit is open, or
a database was at its limit (refused or exhausted connections, a deadlock, a
serialization failure, a lost connection). Such a call may succeed if made
again later, so callers retry it (the client within its budget, a saga until
its deadline) and the API answers 503 with `Retry-After`. Any other failure
(a 4xx answer, a bug) is not retried.
"""

from __future__ import annotations

from typing import Any

from django.db import InterfaceError, OperationalError
from rest_framework import status


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

    # seconds a client is told to wait before trying again
    retry_after: float = 5.0

    def __init__(
        self, service: str, status: int = 503, body: Any = None, message: str = ""
    ) -> None:
        super().__init__(service, status, body, message or f"{service} is unavailable")


class CircuitOpen(ServiceUnavailable):
    """The target's circuit is open: no attempt was made."""

    def __init__(self, service: str, retry_after: float) -> None:
        super().__init__(
            service, message=f"{service}: circuit open, retry in {max(retry_after, 0):.1f} s"
        )
        self.retry_after = max(retry_after, 0.0)


class NoHealthyInstances(ServiceUnavailable):
    """Discovery knows no healthy instance of the target."""

    def __init__(self, service: str) -> None:
        super().__init__(service, message=f"no healthy instances of {service}")


# Statuses that say "try again later", not "your request is wrong".
TECHNICAL_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_technical_status(status: int) -> bool:
    return status in TECHNICAL_STATUSES or status >= 500


def is_technical(exc: BaseException) -> bool:
    """Whether `exc` is a failure that may go away if the same call is made later."""
    if isinstance(exc, ServiceUnavailable):
        return True
    if isinstance(exc, ServiceError):
        return is_technical_status(exc.status)
    # Django wraps every driver's connection, deadlock and serialization errors
    # (psycopg, PyMySQL, sqlite3 "database is locked") in these two.
    return isinstance(exc, OperationalError | InterfaceError)


# --- from cleave.api


class ApplicationError(Exception):
    """
    A business rule refused the operation.

    Commands raise it (or a subclass); the API renders it as problem details with
    `status`. `code` becomes the problem `type`; `errors` maps fields to messages.
    """

    status: int = status.HTTP_400_BAD_REQUEST
    code: str = "invalid"
    title: str = "The request was refused"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        status: int | None = None,
        title: str | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        if title is not None:
            self.title = title
        self.errors = errors


def invalid(field: str, message: str, *, detail: str | None = None) -> ApplicationError:
    """A 400 validation problem naming one field, as DRF's would (`errors: {field: [message]}`)."""
    return ApplicationError(
        detail or "The request body or parameters are invalid.",
        code="validation-error",
        title="Invalid input",
        errors={field: [message]},
    )


class NotFound(ApplicationError):
    status = 404
    code = "not-found"
    title = "Not found"


class Conflict(ApplicationError):
    status = 409
    code = "conflict"
    title = "Conflict"
