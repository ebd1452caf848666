"""
The registry: which event types exist, and who subscribes to them.

Contexts declare their event types in `events.py` with `EventType(...)`; the
platform's AppConfig (`cleave.apps`) registers every `EventType` found in each
context's module on ready. Payloads are validated against a JSON Schema on
publish and on consumption.

`@subscriber("type")` in a context's `handlers.py` registers a handler; the
consumer (`cleave.events.consumer`) takes the handlers of an event from here,
and the transports ask here whether an event has anywhere to go.
"""

from __future__ import annotations

import logging
from importlib import import_module
from types import ModuleType

from django.conf import settings

from cleave.core.declarations import EventType
from cleave.core.registry import is_local

logger = logging.getLogger(__name__)


class UnknownEventType(LookupError):
    """No context registered an event type by this name."""


_types: dict[str, EventType] = {}


def register(event_type: EventType, *, context: str) -> EventType:
    existing = _types.get(event_type.name)
    if existing is not None and existing.context != context:
        raise ValueError(
            f"Event type {event_type.name!r} is already published by {existing.context!r}"
        )
    bound = EventType(
        name=event_type.name,
        schema=event_type.schema,
        version=event_type.version,
        description=event_type.description,
        context=context,
    )
    _types[event_type.name] = bound
    return bound


def register_module_event_types(module: ModuleType, *, context: str) -> list[EventType]:
    """Register every EventType defined at the top level of a context's events module."""
    found = [value for value in vars(module).values() if isinstance(value, EventType)]
    return [register(event_type, context=context) for event_type in found]


def get(name: str) -> EventType:
    try:
        return _types[name]
    except KeyError:
        raise UnknownEventType(f"No registered event type {name!r}") from None


_remote_loaded = False


def find(name: str) -> EventType | None:
    """
    The registered type `name`, or None when no context declares it.

    A consumer validates what it receives against the publisher's schema. In a
    split deployment the publisher is not installed in the consumer's process,
    so its `events` module (a plain declaration, the context's published
    contract) is loaded on first need.
    """
    if name not in _types:
        load_remote_types()
    return _types.get(name)


def load_remote_types() -> None:
    """Register the event types of contexts this process does not serve (once)."""
    global _remote_loaded
    if _remote_loaded:
        return
    _remote_loaded = True
    package = settings.CLEAVE_CONTEXT_PACKAGE
    for label in settings.CLEAVE_ALL_CONTEXTS:
        if not package or is_local(label):
            continue
        try:
            module = import_module(f"{package}.{label}.events")
        except Exception:  # a remote contract that cannot load is not validated
            logger.warning("Cannot load the event types of remote context %s", label, exc_info=True)
            continue
        for value in vars(module).values():
            if isinstance(value, EventType) and value.name not in _types:
                register(value, context=label)
