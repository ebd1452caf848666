"""
The registered event types: which exist, and which context publishes each.

A context declares its event types in its contract (`contracts/<label>.py`);
the platform's AppConfig (`cleave.apps`) registers those of every local
context on ready, and those of the others on first need. Payloads are
validated against a type's JSON Schema on publish and on consumption.

Every released version of a type keeps its schema: the current one from the
contract, the older ones from the event lock (`contracts/events.lock.json`),
so a consumer validates a payload against the version its envelope names
(`schema_at`, `validate`).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import replace
from typing import Any

from django.conf import settings

from cleave.core.declarations import (
    EventType,
    InvalidEventPayload,
    SchemaCheck,
    contract_for,
    event_lock,
)
from cleave.core.registry import is_local
from cleave.messaging.envelope import Envelope

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
        downcasters=event_type.downcasters,
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


# --- versions ------------------------------------------------------------------------------


class UnknownVersion(InvalidEventPayload):
    """A payload of a version whose schema this process does not know (nor a way to it)."""


_locked_checks: dict[tuple[str, int], tuple[Any, SchemaCheck]] = {}
_checks_lock = threading.Lock()


def schema_at(name: str, version: int) -> SchemaCheck | None:
    """
    The compiled schema of version `version` of type `name`: the contract's for
    its current version, the event lock's for a released older one; None when
    this process knows neither (a newer version than its contract).
    """
    event_type = find(name)
    if event_type is not None and event_type.version == version:
        return event_type._check
    schema = ((event_lock().get(name) or {}).get("versions") or {}).get(str(version))
    if schema is None:
        return None
    key = (name, version)
    cached = _locked_checks.get(key)
    if cached is None or cached[0] is not schema:  # compiled once per lock read
        cached = (schema, SchemaCheck(schema))
        with _checks_lock:
            _locked_checks[key] = cached
    return cached[1]


def validate(name: str, version: int, data: Any) -> None:
    """
    Refuse `data` unless it matches version `version` of type `name`
    (InvalidEventPayload; UnknownVersion for a version this process has no
    schema of). A type no context declares is not validated.
    """
    event_type = find(name)
    if event_type is not None and event_type.version == version:
        event_type.validate(data)
        return
    if event_type is None and name not in event_lock():
        return
    check = schema_at(name, version)
    if check is None:
        raise UnknownVersion(name, f"version {version} is not known here (no schema)")
    errors = check.errors(data)
    if errors:
        path = ".".join(str(part) for part in errors[0].absolute_path)
        raise InvalidEventPayload(f"{name} v{version}", errors[0].message, path)


def downcasts(event_type: EventType, data: dict[str, Any], version: int) -> dict[str, Any]:
    """
    `data` (of version `version`) at each older version the type's downcasters
    reach, validated against that version's schema: `{"1": {...}}`.
    """
    found: dict[str, Any] = {}
    if version != event_type.version:
        return found  # an older row: its contract's downcasters start from the current version
    payload = data
    for target in event_type.downcast_versions:
        payload = event_type.downcasters[target](payload)
        validate(event_type.name, target, payload)
        found[str(target)] = payload
    return found


def with_downcasts(envelope: Envelope) -> Envelope:
    """The envelope with the older versions its publisher still publishes (as it leaves)."""
    if envelope.downcasts is not None:
        return envelope
    event_type = find(envelope.type)
    if event_type is None or not event_type.downcasters:
        return envelope
    found = downcasts(event_type, envelope.data, envelope.version)
    return replace(envelope, downcasts=found) if found else envelope
