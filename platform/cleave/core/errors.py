"""
The failures every layer raises: a call to another context that failed (and
whether it is technical), and the domain's refusals (`ApplicationError` and its
kinds), which carry no HTTP status: `cleave.http.problems` maps each kind to one.

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


# --- the domain's refusals -------------------------------------------------------------


class ApplicationError(Exception):
    """
    A business rule refused the operation.

    The domain's error knows nothing of HTTP: commands and queries raise one of
    its kinds below (`Invalid`, `NotFound`, `Conflict`...), or a subclass of one
    that names the rule (`code`, `title`). The API layer (`cleave.http.problems`)
    gives each kind its status and renders the problem details: `code` becomes
    the problem `type`, `detail` its detail; `errors` maps fields to messages.
    """

    code: str = "invalid"
    title: str = "The request was refused"

    def __init__(
        self,
        detail: str,
        *,
        code: str | None = None,
        title: str | None = None,
        errors: dict[str, list[str]] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        if code is not None:
            self.code = code
        if title is not None:
            self.title = title
        self.errors = errors


class Invalid(ApplicationError):
    """The request breaks a rule: a value out of bounds, an empty cart."""


class NotAuthenticated(ApplicationError):
    """The caller could not be recognised: wrong credentials, a token no longer valid."""

    code = "not-authenticated"
    title = "Not authenticated"


class Forbidden(ApplicationError):
    """The caller is known but may not do this."""

    code = "forbidden"
    title = "Not allowed"


class NotFound(ApplicationError):
    """What the request names does not exist (or is not the caller's to see)."""

    code = "not-found"
    title = "Not found"


class Conflict(ApplicationError):
    """The request contradicts the current state: a taken name, a reused key, a late change."""

    code = "conflict"
    title = "Conflict"


class Throttled(ApplicationError):
    """Too many attempts: refused until `retry_after` seconds have passed."""

    code = "too-many-requests"
    title = "Too many requests"

    def __init__(self, detail: str, *, retry_after: float, **kwargs) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class DependencyFailed(ApplicationError):
    """Another context, or a provider, answered with something this one cannot use."""

    code = "dependency-failed"
    title = "Bad gateway"


class Unavailable(ApplicationError):
    """
    Something the operation needs did not answer (a payment provider): asking
    again later may succeed. `retry_after`, when known, is how long to wait.
    """

    code = "unavailable"
    title = "Service unavailable"
    retry_after: float | None = None


def invalid(field: str, message: str, *, detail: str | None = None) -> Invalid:
    """An invalid request naming one field, as DRF's would (`errors: {field: [message]}`)."""
    return Invalid(
        detail or "The request body or parameters are invalid.",
        code="validation-error",
        title="Invalid input",
        errors={field: [message]},
    )
