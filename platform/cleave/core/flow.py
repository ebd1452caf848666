"""
The flow context: which request, business flow and cause the current code serves.

`correlation_id` follows one business flow (a checkout) through every context;
`causation_id` names the event or request that caused the current work;
`request_id` is the id of the HTTP request being served. They live in context
variables so that `publish()`, the service client and log records pick them up
without threading them through every call.
"""

from __future__ import annotations

import contextlib
import contextvars
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Flow:
    correlation_id: str | None = None
    causation_id: str | None = None
    request_id: str | None = None


_current: contextvars.ContextVar[Flow] = contextvars.ContextVar(
    "cleave_flow",
    default=Flow(),  # noqa: B039 - Flow is frozen
)


def current() -> Flow:
    return _current.get()


@contextlib.contextmanager
def flow(**changes: str | None) -> Iterator[Flow]:
    """Run a block with some of the flow ids replaced."""
    value = replace(_current.get(), **changes)
    token = _current.set(value)
    try:
        yield value
    finally:
        _current.reset(token)


def new_id() -> str:
    return str(uuid.uuid4())


def correlation_id() -> str:
    """Return the current correlation id, or a new one when no flow is running."""
    return current().correlation_id or new_id()
