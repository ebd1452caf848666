"""
Test helpers for projects built on cleave (pytest + pytest-django).

- `flows`: a `django_db` mark for tests whose events must really be delivered:
  real transactions on every alias, so `on_commit` fires and handlers run.
- `service_headers(...)`: headers carrying a service token.
- `customer_headers(...)`: headers carrying a customer access token.
- `published(...)`: the outbox rows of a context, optionally of one type.
- `require_server(...)`: skip (or fail, under CLEAVE_REQUIRE_SERVICES=1) when a
  server a test needs is not reachable.
"""

from __future__ import annotations

import os
import socket
from typing import Any
from uuid import UUID

import pytest

from cleave.contexts import alias_for
from cleave.security import SERVICE_TOKEN_HEADER, issue_customer_tokens, issue_service_token

flows = pytest.mark.django_db(transaction=True, databases="__all__")
"""Real transactions on every alias: events are delivered as in production."""

unit = pytest.mark.django_db(databases="__all__")
"""Each test in a rolled-back transaction per alias: fast, but no event delivery."""


def service_headers(*permissions: str, service: str = "tests") -> dict[str, str]:
    """Headers for APIClient: `api.get(url, headers=service_headers("analytics:read"))`."""
    return {SERVICE_TOKEN_HEADER: issue_service_token(service, list(permissions))}


def customer_headers(customer_id: UUID | str, email: str = "") -> dict[str, str]:
    token = issue_customer_tokens(customer_id, email=email)["access"]
    return {"Authorization": f"Bearer {token}"}


def published(context: str, type_name: str | None = None) -> list[Any]:
    """The envelopes a context published, oldest first."""
    from cleave.events.models import OutboxEvent

    rows = OutboxEvent.objects.using(alias_for(context)).order_by("occurred_at", "id")
    if type_name:
        rows = rows.filter(type=type_name)
    return [row.envelope() for row in rows]


def services_required() -> bool:
    return os.environ.get("CLEAVE_REQUIRE_SERVICES") == "1"


def require_server(name: str, host: str, port: int) -> None:
    """Skip the test unless `host:port` accepts connections (fail in CI instead)."""
    try:
        with socket.create_connection((host, port), timeout=1):
            return
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
        if services_required():
            pytest.fail(f"CLEAVE_REQUIRE_SERVICES=1 but {message}")
        pytest.skip(message)
