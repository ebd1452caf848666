"""
Who subscribes to which event types.

`@subscriber(ORDER_CONFIRMED)` in a context's `handlers.py` registers a handler
for an event type its publisher's contract declares (a glob such as
`"order.*"` also works); the consumer takes the handlers of an event from here.

A subscription reads one version of its type: the constant's current version,
or the one it names (`@subscriber(ORDER_PLACED, version=1)`: a consumer that
has not moved to a new major version yet). It may declare upcasters
(`upcasters={1: placed_v1_to_v2}`, each turning a payload of version N into
N+1), so its handler sees one shape whichever version an envelope carries
(`cleave.messaging.versions`). The version each context reads is recorded in
the event lock, where the publisher's check finds who still needs which.

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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from cleave.core.declarations import Caster, EventType, event_lock, type_name
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
    """
    A handler of the event types `pattern` matches. `version`: the version its
    handler reads (None, for a glob: whatever the envelope carries);
    `upcasters`: `{N: f}` turning a payload of version N into N+1.
    """

    pattern: str
    func: Handler
    version: int | None = None
    upcasters: Mapping[int, Caster] = field(default_factory=dict, compare=False)

    @property
    def accepts(self) -> tuple[int, ...]:
        """The versions it can read: its own, and those its upcasters lead up from."""
        if self.version is None:
            return ()
        found = [self.version]
        for source in range(self.version - 1, 0, -1):
            if source not in self.upcasters:
                break
            found.append(source)
        return tuple(found)

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


def subscriber(
    *events: EventType | str,
    version: int | None = None,
    upcasters: Mapping[int, Caster] | None = None,
) -> Callable[[Handler], Handler]:
    """
    Register the decorated function as a handler of event types (their contract constants).

    It reads each type's current version, or `version` (one type only): an
    older released version it has not moved from yet. `upcasters` (`{N: f}`,
    f turning a payload of version N into N+1) let it also take older
    versions, in the shape of the one it reads.
    """
    if not events:
        raise TypeError("subscriber() needs at least one event type")
    if (version is not None or upcasters) and len(events) != 1:
        raise TypeError("subscriber(): a version or upcasters belong to one event type")
    upcasters = dict(upcasters or {})
    declared = [(type_name(event), _version(event, version, upcasters)) for event in events]

    def decorate(func: Handler) -> Handler:
        for pattern, reads in declared:
            sub = Subscription(pattern, func, reads, upcasters)
            if not any(s.pattern == pattern and s.name == sub.name for s in _subscriptions):
                _subscriptions.append(sub)
        return func

    return decorate


def _version(event: EventType | str, version: int | None, upcasters: Mapping[int, Caster]):
    """The version a subscription reads, checked against its type's declaration."""
    current = event.version if isinstance(event, EventType) else None
    reads = version if version is not None else current
    name = type_name(event)
    if reads is None:
        if upcasters:
            raise TypeError(f"subscriber({name!r}): upcasters need the version they lead to")
        return None
    if not isinstance(reads, int) or reads < 1 or (current is not None and reads > current):
        raise ValueError(
            f"subscriber({name}): version {reads!r} is not one of its versions (1 to {current})"
        )
    for source, caster in upcasters.items():
        if not isinstance(source, int) or not 1 <= source < reads or not callable(caster):
            raise ValueError(
                f"subscriber({name}): upcasters map an older version (1 to {reads - 1}) "
                f"to a function, not {source!r}"
            )
    return reads


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
