"""
Event versions through a rolling upgrade: who needs which, and is it published?

A publisher and its consumers are deployed one at a time, so for a while a
consumer runs the code of the previous release. Every version a consumer may
still read must therefore keep being published: the publisher's current
version, or an older one its contract downcasts to (`EventType.downcasters`,
carried in every message beside the current payload). Who reads what comes
from two places:

- the handlers of today's code (`@subscriber(T, version=N, upcasters=...)`):
  a consumer takes its version, or an older one its upcasters lead up from;
- the event lock (`consumers`): what the last locked release declared,
  which is what may still run while this one rolls out. It takes exactly
  the version recorded.

`problems()` names each reader that would be left without a version it can
read (and declarations that name versions never released); `render()` is the
table `manage.py contracts versions` prints. Retiring a version is thus two
releases: first every consumer moves on (and the lock records it), then the
downcaster goes.
"""

from __future__ import annotations

from typing import Any

from cleave.core.declarations import EventType
from cleave_tools.checks.eventlock import Reader


def published(event: EventType) -> tuple[int, ...]:
    """The versions a publisher of `event` sends: its current one, then its downcasts."""
    return (event.version, *event.downcast_versions)


def _released(entry: dict[str, Any] | None) -> set[int]:
    return {int(version) for version in ((entry or {}).get("versions") or {})}


def locked_readers(entry: dict[str, Any] | None) -> dict[str, Reader]:
    """The consumers the lock records for one type, each taking exactly its version."""
    return {
        label: Reader(label, int(version), (int(version),))
        for label, version in ((entry or {}).get("consumers") or {}).items()
    }


def problems(
    events: list[EventType], locked: dict[str, Any], declared: dict[str, dict[str, Reader]]
) -> list[str]:
    """Every reader left without a version it reads, and every version named but never released."""
    found: list[str] = []
    for event in sorted(events, key=lambda e: e.name):
        entry = locked.get(event.name)
        released = _released(entry) | {event.version}
        sends = published(event)
        said = _sends(event)
        for target in event.downcast_versions:
            if entry is not None and target not in released:
                found.append(
                    f"{event.name}: {event.context} downcasts to v{target}, a version the "
                    "lock does not record (never released)"
                )
        for label, reader in (declared.get(event.name) or {}).items():
            if reader.version > event.version or reader.version not in released:
                found.append(
                    f"{event.name}: {label} reads v{reader.version}, which {event.context} "
                    f"never released (the lock has {_list(released)})"
                )
            elif not reader.served_by(sends):
                takes = _list(reader.accepts)
                found.append(
                    f"{event.name}: {label} reads v{reader.version} (takes {takes}) but "
                    f"{event.context} {said}: declare a downcaster to v{reader.version} in "
                    f"{event.context}'s contract, or an upcaster in {label}'s handler"
                )
        for label, reader in locked_readers(entry).items():
            if not reader.served_by(sends):
                found.append(
                    f"{event.name}: the locked release of {label} reads v{reader.version}, "
                    f"and may still run during the upgrade, but {event.context} {said}: keep "
                    f"a downcaster to v{reader.version} until a release where {label} reads "
                    "a newer version is locked and deployed"
                )
    return found


def _list(versions) -> str:
    return ", ".join(f"v{v}" for v in sorted(versions)) or "no version"


def _sends(event: EventType) -> str:
    return f"publishes only {_list(published(event))}"


def render(
    events: list[EventType], locked: dict[str, Any], declared: dict[str, dict[str, Reader]]
) -> str:
    """Who needs which version of each event type, and what its publisher sends."""
    lines = []
    for event in sorted(events, key=lambda e: e.name):
        sends = published(event)
        extra = f" (and {_list(sends[1:])} by downcasting)" if len(sends) > 1 else ""
        lines.append(f"{event.name}: {event.context} publishes v{event.version}{extra}")
        now = declared.get(event.name) or {}
        before = locked_readers(locked.get(event.name))
        if not now and not before:
            lines.append("  no consumer")
        for label in sorted(set(now) | set(before)):
            parts = []
            reader = now.get(label)
            if reader is not None:
                upcasts = [v for v in reader.accepts if v != reader.version]
                parts.append(
                    f"reads v{reader.version}"
                    + (f" (upcasts from {_list(upcasts)})" if upcasts else "")
                )
            else:
                parts.append("no longer subscribes")
            old = before.get(label)
            if old is not None and (reader is None or old.version != reader.version):
                parts.append(f"locked release reads v{old.version}")
            ok = all(r.served_by(sends) for r in (reader, old) if r is not None)
            lines.append(f"  {label:<14} {'; '.join(parts)}{'' if ok else '  <- NOT PUBLISHED'}")
    return "\n".join(lines) + "\n"
