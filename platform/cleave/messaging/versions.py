"""
Which shape of an event a handler gets, when versions of its type coexist.

Through a rolling upgrade a publisher and its consumers run different code, so
an envelope may carry a version its consumer does not read. The consumer's
side of that, in one place:

- a payload is validated against the schema of the version it is of (the
  contract's for the current version, the event lock's for an older one),
  never against whatever version this process happens to publish;
- a subscription reads one version (`Subscription.version`); it gets that
  version's payload when the envelope carries it, as `data` or among the
  publisher's `downcasts` (a publisher on a newer version keeps publishing
  the older ones its contract downcasts to);
- otherwise this process's own copy of the contract may downcast (the
  publisher's code, in-process or on replay), or the subscription's
  upcasters lead up from an older payload to its version; a payload valid
  under both its own version and the one read (a bump that only added enum
  values, as `order.cancelled` v2) is handed over as it is;
- with none of these, the event cannot be read here: `UnknownVersion`, which
  the consumer dead-letters as an invalid payload (to be redriven once the
  consumer is upgraded). `manage.py contracts versions --check` refuses the
  contract states that would lead there.

The handler receives a copy of the envelope at its version (same id, so the
inbox applies it once whichever copy arrives).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from cleave.core.declarations import InvalidEventPayload
from cleave.messaging import subscriptions, types
from cleave.messaging.envelope import Envelope

__all__ = ["payloads", "shaped"]


def payloads(envelope: Envelope) -> dict[int, Any]:
    """Every version of the event the envelope carries: its own and the publisher's downcasts."""
    found = {int(envelope.version): envelope.data}
    for version, data in (envelope.downcasts or {}).items():
        try:
            found.setdefault(int(version), data)
        except (TypeError, ValueError):
            continue  # not a version: nothing can read it
    return found


def shaped(
    sub: subscriptions.Subscription, envelope: Envelope, *, validated: bool = False
) -> Envelope:
    """
    `envelope` as `sub`'s handler reads it: the payload of the version it
    declares, validated. `validated`: the envelope's own payload was checked
    already (by the publisher in this process). Raises InvalidEventPayload
    (UnknownVersion when no version it carries leads to the one `sub` reads).
    """
    target = sub.version
    if target is None or target == envelope.version:
        if not validated:
            types.validate(envelope.type, envelope.version, envelope.data)
        return _at(envelope, envelope.version, envelope.data)
    carried = payloads(envelope)
    if target in carried:
        types.validate(envelope.type, target, carried[target])
        return _at(envelope, target, carried[target])
    # newer payloads: this process's copy of the publisher's contract may step down
    event_type = types.find(envelope.type)
    reachable = set(event_type.downcast_versions) if event_type is not None else set()
    if event_type is not None and target in reachable and event_type.version in carried:
        data = carried[event_type.version]
        types.validate(envelope.type, event_type.version, data)
        for step in range(event_type.version - 1, target - 1, -1):
            data = event_type.downcasters[step](data)
        types.validate(envelope.type, target, data)
        return _at(envelope, target, data)
    # older payloads: the subscription's upcasters step up, from the newest one it can
    for source in sorted((v for v in carried if v in sub.accepts), reverse=True):
        data = carried[source]
        types.validate(envelope.type, source, data)
        for step in range(source, target):
            data = sub.upcasters[step](data)
        types.validate(envelope.type, target, data)
        return _at(envelope, target, data)
    # a version that only widened or narrowed (order.cancelled v2 added reasons): a payload
    # that its own version and the one `sub` reads both accept needs no caster
    for source in sorted(carried, key=lambda v: (abs(v - target), -v)):
        if _valid(envelope.type, source, carried[source]) and _valid(
            envelope.type, target, carried[source]
        ):
            return _at(envelope, target, carried[source])
    versions = ", ".join(f"v{v}" for v in sorted(carried))
    raise types.UnknownVersion(
        envelope.type,
        f"{sub.name} reads v{target}; the message carries {versions}, and no downcaster "
        f"or upcaster leads from one of them to v{target}",
    )


def _valid(name: str, version: int, data: Any) -> bool:
    try:
        types.validate(name, version, data)
    except InvalidEventPayload:
        return False
    return True


def _at(envelope: Envelope, version: int, data: Any) -> Envelope:
    if envelope.version == version and envelope.data is data and envelope.downcasts is None:
        return envelope
    return replace(envelope, version=version, data=data, downcasts=None)
