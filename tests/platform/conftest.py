"""
Fixtures for the platform tests.

The users context is the vehicle: its real models, commands and events exercise
the platform. Test-only subscribers and sagas are registered here and removed
again after each test, so no test leaks a handler into another.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from cleave import sagas
from cleave.core import declarations
from cleave.core.declarations import EventType
from cleave.messaging import subscriptions, types
from cleave.messaging.envelope import Envelope
from cleave.sagas import SagaDefinition


@pytest.fixture
def local_subscriber() -> Iterator[Callable[..., Callable[[Envelope], None]]]:
    """
    Register a test handler as if the users context declared it.

    `Subscription.context` is found from the handler's module, so the function
    is re-homed into `contexts.users.handlers` (and given a unique name, since
    the inbox keys on it).
    """
    registered: list[Callable[[Envelope], None]] = []

    def register(func: Callable[[Envelope], None], *patterns: str) -> Callable[[Envelope], None]:
        def handler(envelope: Envelope) -> None:
            func(envelope)

        handler.__module__ = "contexts.users.handlers"
        handler.__qualname__ = f"test_handler_{uuid.uuid4().hex[:8]}"
        subscriptions.subscriber(*(patterns or ("user.created",)))(handler)
        registered.append(handler)
        return handler

    yield register
    subscriptions._subscriptions[:] = [
        s for s in subscriptions._subscriptions if s.func not in registered
    ]


PROBE_EVENT = "platform.probed"


@pytest.fixture
def probe_event() -> Iterator[str]:
    """
    A test-only event type owned by the users context.

    Only the test's own subscribers receive it, so what the tests assert about
    delivery does not depend on other contexts' handlers of `user.created`.
    """
    types.register(
        EventType(PROBE_EVENT, schema=declarations.obj({"n": declarations.POSITIVE_INT})),
        context="users",
    )
    yield PROBE_EVENT
    types._types.pop(PROBE_EVENT, None)


@pytest.fixture
def saga_definitions() -> Iterator[Callable[[SagaDefinition], SagaDefinition]]:
    """Register test saga definitions; forget them after the test."""
    names: list[str] = []

    def register(definition: SagaDefinition) -> SagaDefinition:
        names.append(definition.name)
        return sagas.register(definition)

    yield register
    for name in names:
        sagas.unregister(name)


@pytest.fixture
def no_saga_backoff(settings):
    """Retry saga steps at once: the backoff formula multiplies this base."""
    settings.CLEAVE_SAGA_RETRY_BASE = 0
