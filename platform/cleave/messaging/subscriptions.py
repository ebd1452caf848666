"""
Who subscribes to which event types.

`@subscriber(ORDER_CONFIRMED)` in a context's `handlers.py` registers a handler
for an event type its publisher's contract declares (a glob such as
`"order.*"` also works); the consumer takes the handlers of an event from here.

Which events a context consumes is derived from these handlers and nowhere
listed again: `manage.py contracts lock` records it in the event lock
(`contracts/events.lock.json`, `consumers` of each type), which a process
serving other contexts reads to learn who, served elsewhere, subscribes to
what it publishes (`remote_subscribers`): the broker then carries it, and a
process on the in-process transport whose events would reach no one refuses
to start.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cleave.core.declarations import EventType, event_lock, type_name
from cleave.core.registry import ContextConfig, context_for_module, is_local
from cleave.messaging.envelope import Envelope


def consumers_of(type_name: str) -> dict[str, int]:
    """The contexts that consume `type_name`, with the version each reads (the event lock)."""
    entry = event_lock().get(type_name) or {}
    return {label: int(version) for label, version in (entry.get("consumers") or {}).items()}


def remote_subscribers(type_names: list[str]) -> dict[str, list[str]]:
    """Which contexts this process does not serve subscribe to which of `type_names`."""
    local = set(settings.CLEAVE_CONTEXTS)
    found: dict[str, list[str]] = {}
    for name in type_names:
        for label in consumers_of(name):
            if label not in local:
                found.setdefault(label, []).append(name)
    return {label: found[label] for label in settings.CLEAVE_ALL_CONTEXTS if label in found}


def consumed_by(label: str) -> list[str]:
    """The event types context `label` consumes, served here or not (the event lock)."""
    return sorted(
        name for name, entry in event_lock().items() if label in (entry.get("consumers") or {})
    )


def refuse_lost_events(label: str, type_names: list[str]) -> None:
    """
    Refuse to start a process whose events would be lost: with the in-process
    transport, an event reaches only the subscribers in this process, so one
    that a context served elsewhere subscribes to would be marked delivered
    and never reach it.
    """
    if settings.CLEAVE_EVENT_TRANSPORT != "inprocess":
        return
    remote = remote_subscribers(type_names)
    if remote:
        who = "; ".join(
            f"{other} subscribes to {', '.join(names)}" for other, names in remote.items()
        )
        raise ImproperlyConfigured(
            f"Context {label!r} publishes events that contexts this process does not serve "
            f"subscribe to ({who}), but CLEAVE_EVENT_TRANSPORT is 'inprocess': they would "
            "never arrive. Set CLEAVE_EVENT_TRANSPORT=celery and CELERY_BROKER_URL in every "
            "process of a split deployment."
        )


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


def subscriber(*events: EventType | str) -> Callable[[Handler], Handler]:
    """Register the decorated function as a handler of event types (their contract constants)."""
    if not events:
        raise TypeError("subscriber() needs at least one event type")
    patterns = [type_name(event) for event in events]

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
