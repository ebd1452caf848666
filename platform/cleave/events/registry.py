"""
The event-type registry: each type's name, version, owning context and schema.

Contexts declare their event types in `events.py` with `EventType(...)`; the
context's AppConfig registers every `EventType` found in that module on ready.
Payloads are validated against a JSON Schema on publish and on consumption.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from types import ModuleType
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator

# The formats the fast check knows, decided by the validator's own checkers.
_FAST_FORMATS = {
    name: (lambda value, name=name: Draft202012Validator.FORMAT_CHECKER.conforms(value, name))
    for name in Draft202012Validator.FORMAT_CHECKER.checkers
}


class UnknownEventType(LookupError):
    """No context registered an event type by this name."""


class InvalidEventPayload(ValueError):
    """A payload does not match its event type's schema."""

    def __init__(self, type_name: str, message: str, path: str = "") -> None:
        super().__init__(f"{type_name}: {path + ': ' if path else ''}{message}")
        self.type_name = type_name
        self.path = path


@dataclass(frozen=True)
class EventType:
    """A published event type. `schema` is a JSON Schema for `data`."""

    name: str
    schema: dict[str, Any]
    version: int = 1
    description: str = ""
    context: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)

    @cached_property
    def _validator(self) -> Draft202012Validator:
        """Compiled once per type: building a validator costs more than validating."""
        return Draft202012Validator(self.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    @cached_property
    def _fast_check(self) -> Callable[[Any], Any] | None:
        """
        The schema compiled to Python by fastjsonschema, with the validator's
        own format checkers: it accepts a payload in a few microseconds, where
        the interpreting validator takes a hundred or more. It may be stricter
        than the validator (a `$` that refuses a trailing newline), never more
        lenient, so it only ever says "valid"; anything it refuses is judged,
        and explained, by the validator.
        """
        try:
            return fastjsonschema.compile(self.schema, formats=_FAST_FORMATS)
        except Exception:  # a schema it cannot compile is left to the validator
            return None

    def validate(self, data: Any) -> None:
        fast = self._fast_check
        if fast is not None:
            try:
                fast(data)
                return
            except fastjsonschema.JsonSchemaException:
                pass
        validator = self._validator
        if validator.is_valid(data):  # the common case, without sorting errors
            return
        error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
        if error is not None:
            path = ".".join(str(part) for part in error.absolute_path)
            raise InvalidEventPayload(self.name, error.message, path)


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
    import logging
    from importlib import import_module

    from django.conf import settings

    from cleave.contexts import is_local

    package = settings.CLEAVE_CONTEXT_PACKAGE
    for label in settings.CLEAVE_ALL_CONTEXTS:
        if not package or is_local(label):
            continue
        try:
            module = import_module(f"{package}.{label}.events")
        except Exception:  # a remote contract that cannot load is not validated
            logging.getLogger(__name__).warning(
                "Cannot load the event types of remote context %s", label, exc_info=True
            )
            continue
        for value in vars(module).values():
            if isinstance(value, EventType) and value.name not in _types:
                register(value, context=label)


def obj(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    """Shorthand for a closed JSON-Schema object; every property required by default."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


UUID = {"type": "string", "format": "uuid"}
MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d{1,4})?$"}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
POSITIVE_INT = {"type": "integer", "minimum": 1}
DATETIME = {"type": "string", "format": "date-time"}
