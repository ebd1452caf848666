"""
The registered event types: which exist, and which context publishes each.

A context declares its event types in its contract (`contracts/<label>.py`);
the platform's AppConfig (`cleave.apps`) registers those of every local
context on ready, and those of the others on first need. Payloads are
validated against a type's JSON Schema on publish and on consumption.
"""

from __future__ import annotations

import logging

from django.conf import settings

from cleave.core.declarations import EventType, contract_for
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


def register_contract(label: str) -> list[EventType]:
    """Register the event types context `label`'s contract declares."""
    return [register(event, context=label) for event in contract_for(label).events]


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
    so its contract (a plain declaration) is loaded on first need.
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
    for label in settings.CLEAVE_ALL_CONTEXTS:
        if is_local(label):
            continue
        try:
            declared = contract_for(label).events
        except Exception:  # a remote contract that cannot load is not validated
            logger.warning("Cannot load the event types of remote context %s", label, exc_info=True)
            continue
        for event in declared:
            if event.name not in _types:
                register(event, context=label)
