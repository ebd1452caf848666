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

import fnmatch
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from types import ModuleType
from typing import Any

import fastjsonschema
from django.apps import apps
from django.conf import settings
from jsonschema import Draft202012Validator

from cleave.contexts import ContextConfig, context_for_module, is_local

from .envelope import Envelope

logger = logging.getLogger(__name__)

# The formats the fast check knows, decided by the validator's own checkers.
_FAST_FORMATS = {
    name: (lambda value, name=name: Draft202012Validator.FORMAT_CHECKER.conforms(value, name))
    for name in Draft202012Validator.FORMAT_CHECKER.checkers
}


def compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """
    `schema` compiled to Python by fastjsonschema, with the validator's own
    format checkers: it accepts a payload in a few microseconds, where the
    interpreting validator takes a hundred or more. It may be stricter than
    the validator (a `$` that refuses a trailing newline), never more lenient,
    so it only ever says "valid"; anything it refuses is judged, and
    explained, by the validator. None when it cannot compile the schema.
    """
    try:
        return fastjsonschema.compile(schema, formats=_FAST_FORMATS)
    except Exception:  # a schema it cannot compile is left to the validator
        return None


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
        return compile_fast(self.schema)

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


# --- subscriptions ---------------------------------------------------------------

Handler = Callable[[Envelope], None]


@dataclass(frozen=True)
class Subscription:
    pattern: str
    func: Handler

    @property
    def name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"

    @cached_property
    def context(self) -> ContextConfig:
        cfg = context_for_module(self.func.__module__)
        if cfg is None:
            raise LookupError(f"Subscriber {self.name} does not belong to a local context")
        return cfg

    def matches(self, type_name: str) -> bool:
        return fnmatch.fnmatchcase(type_name, self.pattern)


_subscriptions: list[Subscription] = []


def subscriber(*patterns: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as a handler for event types (globs allowed)."""
    if not patterns:
        raise TypeError("subscriber() needs at least one event type")

    def decorate(func: Handler) -> Handler:
        for pattern in patterns:
            sub = Subscription(pattern, func)
            if not any(s.pattern == pattern and s.name == sub.name for s in _subscriptions):
                _subscriptions.append(sub)
        return func

    return decorate


_found: dict[tuple[str, str | None], tuple[tuple, list[Subscription]]] = {}


def subscriptions_for(
    type_name: str, *, subscriber_context: str | None = None
) -> list[Subscription]:
    """The local subscriptions that receive `type_name` (optionally of one context)."""
    # remembered per type until a subscription or the installed apps change
    signature = (tuple(map(id, _subscriptions)), id(apps.app_configs))
    key = (type_name, subscriber_context)
    hit = _found.get(key)
    if hit is not None and hit[0] == signature:
        return list(hit[1])
    found = _subscriptions_for(type_name, subscriber_context)
    if len(_found) > 4096:
        _found.clear()
    _found[key] = (signature, found)
    return list(found)


def _subscriptions_for(type_name: str, subscriber_context: str | None) -> list[Subscription]:
    found = []
    for sub in _subscriptions:
        module_context = context_for_module(sub.func.__module__)
        if module_context is None or not is_local(module_context.label):
            continue
        if subscriber_context and module_context.label != subscriber_context:
            continue
        if sub.matches(type_name):
            found.append(sub)
    return found


def all_subscriptions() -> list[Subscription]:
    return list(_subscriptions)
