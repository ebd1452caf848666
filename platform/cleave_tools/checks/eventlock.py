"""
Event schemas against the lock: may this change ship under the same version?

The lock (`<contracts package>/events.lock.json`, written by `manage.py
contracts lock`) records every event type's schema for each version it has
had. A schema that changes under a version already locked must stay
compatible in both directions, because both kinds of reader exist:

1. Old payloads stay valid under the new schema: the outbox is the event log
   and is replayed through today's schema, and a publisher not yet redeployed
   still sends them. So no property is removed or renamed, none is added as
   required, none turns from optional to required, and no type, enum, const,
   format, pattern or bound is narrowed.
2. New payloads stay valid under the old schema: in a split deployment each
   consumer validates an event with its own copy of the publisher's schema,
   and its handlers read what that schema promised. So no property is added
   to an object the old schema closed (`additionalProperties: false`, which
   `obj()` sets on every object here), none turns from required to optional,
   and no type, enum, const, format, pattern or bound is widened.

What remains compatible: annotations (`description`, `title`, `examples`,
`default`, `$comment`, `deprecated`), the order of `properties` and
`required`, and an optional property added to an object the old schema left
open. A new event type, and a new version of one, are always accepted, and
recorded. Anything the comparison does not understand (`$ref`, `oneOf`,
`if`...) counts as incompatible when it changes. Written by hand: the JSON
Schema libraries validate documents; none compares two schemas.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from cleave.core.declarations import EventType
from cleave.core.registry import context_for_module, is_local
from cleave.messaging.subscriptions import all_subscriptions

LOCK_FORMAT = 1
ANNOTATIONS = frozenset({"description", "title", "examples", "default", "$comment", "deprecated"})
# bounds that narrow the valid payloads when they grow, and those that narrow when they shrink
LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
UNDERSTOOD = (
    ANNOTATIONS
    | set(LOWER_BOUNDS)
    | set(UPPER_BOUNDS)
    | {
        "type",
        "enum",
        "const",
        "format",
        "pattern",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "uniqueItems",
    }
)


@dataclass(frozen=True)
class Change:
    """One difference between two schemas; `breaks` names the rule (1 or 2) it breaks, or 0."""

    path: str
    message: str
    breaks: int = 0

    def __str__(self) -> str:
        rule = {
            1: " (breaks rule 1: old payloads would be refused)",
            2: " (breaks rule 2: consumers holding the old schema would refuse new payloads)",
        }.get(self.breaks, "")
        return f"{self.path}: {self.message}{rule}"


def schema_changes(old: Any, new: Any, path: str = "data") -> list[Change]:
    """Every difference between `old` and `new`, judged against the two rules above."""
    if old == new:
        return []
    if not isinstance(old, dict) or not isinstance(new, dict):
        return [Change(path, "the schema was replaced", breaks=1)]
    changes: list[Change] = []
    for keyword in sorted((set(old) | set(new)) - UNDERSTOOD):
        if old.get(keyword) != new.get(keyword):
            changes.append(Change(path, f"`{keyword}` changed; it cannot be judged", breaks=1))
    changes.extend(_types(old, new, path))
    changes.extend(_values(old, new, path, "enum"))
    if old.get("const", _MISSING) != new.get("const", _MISSING):
        changes.extend(_values({"enum": _const(old)}, {"enum": _const(new)}, path, "const"))
    for keyword in ("format", "pattern"):
        changes.extend(_constraint(old, new, path, keyword))
    for keyword in LOWER_BOUNDS:
        changes.extend(_bound(old, new, path, keyword, lower=True))
    for keyword in UPPER_BOUNDS:
        changes.extend(_bound(old, new, path, keyword, lower=False))
    if old.get("uniqueItems", False) != new.get("uniqueItems", False):
        changes.append(
            Change(path, "uniqueItems changed", breaks=1 if new.get("uniqueItems") else 2)
        )
    changes.extend(_object(old, new, path))
    if "items" in old or "items" in new:
        changes.extend(schema_changes(old.get("items", {}), new.get("items", {}), f"{path}[]"))
    if not changes:
        changes.append(Change(path, "annotations or ordering changed"))
    return changes


_MISSING = object()


def _const(schema: dict[str, Any]) -> list[Any] | None:
    return [schema["const"]] if "const" in schema else None


def _type_set(schema: dict[str, Any]) -> set[str] | None:
    declared = schema.get("type")
    if declared is None:
        return None
    return set(declared) if isinstance(declared, list) else {declared}


def _covers(outer: set[str] | None, inner: set[str] | None) -> bool:
    if outer is None:
        return True
    if inner is None:
        return False
    return all(t in outer or (t == "integer" and "number" in outer) for t in inner)


def _types(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Change]:
    before, after = _type_set(old), _type_set(new)
    if before == after:
        return []
    changes = []
    if not _covers(after, before):
        changes.append(Change(path, f"type narrowed from {before} to {after}", breaks=1))
    if not _covers(before, after):
        changes.append(Change(path, f"type widened from {before} to {after}", breaks=2))
    return changes


def _values(old: dict[str, Any], new: dict[str, Any], path: str, keyword: str) -> list[Change]:
    before, after = old.get("enum"), new.get("enum")
    if before == after or (before is not None and after is not None and _same(before, after)):
        return []
    changes = []
    if before is None:
        changes.append(Change(path, f"{keyword} added: {after}", breaks=1))
        return changes
    if after is None:
        changes.append(Change(path, f"{keyword} removed (was {before})", breaks=2))
        return changes
    lost = [value for value in before if value not in after]
    gained = [value for value in after if value not in before]
    if lost:
        changes.append(Change(path, f"{keyword} lost {lost}", breaks=1))
    if gained:
        changes.append(Change(path, f"{keyword} gained {gained}", breaks=2))
    return changes


def _same(one: list[Any], other: list[Any]) -> bool:
    return all(v in other for v in one) and all(v in one for v in other)


def _constraint(old: dict[str, Any], new: dict[str, Any], path: str, keyword: str):
    before, after = old.get(keyword), new.get(keyword)
    if before == after:
        return []
    if before is None:
        return [Change(path, f"{keyword} {after!r} added", breaks=1)]
    if after is None:
        return [Change(path, f"{keyword} {before!r} removed", breaks=2)]
    return [
        Change(path, f"{keyword} changed from {before!r} to {after!r}", breaks=1),
        Change(path, f"{keyword} changed from {before!r} to {after!r}", breaks=2),
    ]


def _bound(old: dict[str, Any], new: dict[str, Any], path: str, keyword: str, *, lower: bool):
    before, after = old.get(keyword), new.get(keyword)
    if before == after:
        return []
    if before is None or after is None:
        narrower = before is None  # a bound added narrows; one removed widens
    else:
        narrower = after > before if lower else after < before
    said = f"{keyword} {before} → {after}"
    return [Change(path, said, breaks=1 if narrower else 2)]


def _object(old: dict[str, Any], new: dict[str, Any], path: str) -> list[Change]:
    before = old.get("properties", {})
    after = new.get("properties", {})
    old_required, new_required = set(old.get("required", [])), set(new.get("required", []))
    old_closed = old.get("additionalProperties", True) is False
    new_closed = new.get("additionalProperties", True) is False
    changes: list[Change] = []
    for name in sorted(set(before) - set(after)):
        changes.append(Change(f"{path}.{name}", "property removed (or renamed)", breaks=1))
    for name in sorted(set(after) - set(before)):
        if name in new_required:
            changes.append(Change(f"{path}.{name}", "required property added", breaks=1))
        if old_closed:
            changes.append(Change(f"{path}.{name}", "property added to a closed object", breaks=2))
        elif name not in new_required:
            changes.append(Change(f"{path}.{name}", "optional property added to an open object"))
    for name in sorted(set(before) & set(after)):
        changes.extend(schema_changes(before[name], after[name], f"{path}.{name}"))
    for name in sorted((new_required - old_required) & set(before)):
        changes.append(Change(f"{path}.{name}", "optional property made required", breaks=1))
    for name in sorted((old_required - new_required) & set(after)):
        changes.append(Change(f"{path}.{name}", "required property made optional", breaks=2))
    extra_before = old.get("additionalProperties", True)
    extra_after = new.get("additionalProperties", True)
    if extra_before != extra_after:
        if new_closed and not old_closed:
            changes.append(Change(path, "object closed (additionalProperties false)", breaks=1))
        elif old_closed and not new_closed:
            changes.append(Change(path, "object opened (additionalProperties)", breaks=2))
        else:
            changes.append(Change(path, "additionalProperties changed", breaks=1))
    return changes


def incompatible(old: Any, new: Any) -> list[Change]:
    return [change for change in schema_changes(old, new) if change.breaks]


# --- the lock ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What `check_lock` found: changes that need a version bump, and what the lock lacks."""

    breaking: list[str]
    unrecorded: list[str]

    @property
    def ok(self) -> bool:
        return not self.breaking and not self.unrecorded


def _canonical(schema: Any) -> Any:
    return json.loads(json.dumps(schema))


def read_lock(path: Path) -> dict[str, Any]:
    """The lock's event types; an empty lock when the file does not exist yet."""
    if not path.exists():
        return {}
    try:
        raw = json.loads(path.read_text())
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != LOCK_FORMAT:
        raise ValueError(f"{path} is not an event lock of format {LOCK_FORMAT}")
    return raw.get("events", {})


@dataclass(frozen=True)
class Reader:
    """
    One context's reading of one event type: the version its handlers
    declare, and every version it can take (its upcasters lead up from the
    older ones); `accepts` is empty for a glob, which takes any version.
    """

    context: str
    version: int
    accepts: tuple[int, ...]

    def served_by(self, published: tuple[int, ...]) -> bool:
        return not self.accepts or any(version in published for version in self.accepts)


def readers(events: list[EventType]) -> dict[str, dict[str, Reader]]:
    """
    Which contexts consume each of `events`, with the version they read:
    derived from the handlers registered in this process (every context must
    be served here), never listed by hand. A context reads one version of a
    type: its handlers of that type declare the same one.
    """
    remote = [label for label in settings.CLEAVE_ALL_CONTEXTS if not is_local(label)]
    if remote:
        raise RuntimeError(
            f"The event lock records every context's handlers; this process does not serve "
            f"{', '.join(remote)}. Run it with CLEAVE_CONTEXTS unset."
        )
    found: dict[str, dict[str, Reader]] = {event.name: {} for event in events}
    for subscription in all_subscriptions():
        config = context_for_module(subscription.func.__module__)
        if config is None:
            continue  # a test's or a tool's handler, not a context's
        for event in events:
            if not subscription.matches(event.name):
                continue
            reader = Reader(
                config.label,
                subscription.version or event.version,
                subscription.accepts,
            )
            known = found[event.name].get(config.label)
            if known is not None and known.version != reader.version:
                raise RuntimeError(
                    f"{config.label}'s handlers of {event.name} read v{known.version} and "
                    f"v{reader.version} ({subscription.name}); a context reads one version "
                    "of a type: declare the same `version=` on each (with upcasters)"
                )
            if known is not None and set(known.accepts) != set(reader.accepts):
                # the context takes what all its handlers take
                common = tuple(v for v in known.accepts if v in reader.accepts) or (reader.version,)
                reader = Reader(config.label, reader.version, common)
            found[event.name][config.label] = reader
    return {name: dict(sorted(by.items())) for name, by in found.items()}


def consumers(events: list[EventType]) -> dict[str, dict[str, int]]:
    """The version each consuming context reads, per type, as the lock records it."""
    return {
        name: {label: reader.version for label, reader in by.items()}
        for name, by in readers(events).items()
    }


def check_lock(
    events: list[EventType],
    locked: dict[str, Any],
    readers: dict[str, dict[str, int]] | None = None,
) -> Verdict:
    """Compare the event types published today, and who reads them, with the lock."""
    breaking: list[str] = []
    unrecorded: list[str] = []
    for name, now in sorted((readers or {}).items()):
        if name in locked and (locked[name].get("consumers") or {}) != now:
            unrecorded.append(f"{name}: consumed by {', '.join(now) or 'no context'}")
    published = {event.name: event for event in events}
    for name in sorted(set(locked) - set(published)):
        breaking.append(
            f"{name}: locked but no context publishes it any more; consumers may still "
            "subscribe. Once none does, remove it from the lock by hand."
        )
    for name, event in sorted(published.items()):
        entry = locked.get(name)
        where = f"{name} v{event.version}"
        if entry is None:
            unrecorded.append(f"{where}: a new event type")
            continue
        versions = {int(version): schema for version, schema in entry["versions"].items()}
        if event.version not in versions:
            newest = max(versions)
            if event.version < newest:
                breaking.append(f"{where}: the lock already has v{newest}; versions only go up")
            else:
                unrecorded.append(f"{where}: a new version (the lock has up to v{newest})")
            continue
        current = _canonical(event.schema)
        if current == versions[event.version] and entry.get("owner") == event.context:
            continue
        broken = incompatible(versions[event.version], current)
        if broken:
            breaking.extend(f"{where}: {change}" for change in broken)
        else:
            unrecorded.append(f"{where}: a compatible change")
    return Verdict(breaking=breaking, unrecorded=unrecorded)


def updated_lock(
    events: list[EventType],
    locked: dict[str, Any],
    readers: dict[str, dict[str, int]] | None = None,
) -> dict[str, Any]:
    """The lock with today's schemas and consumers recorded (once nothing is breaking)."""
    result = {
        name: {**entry, "versions": dict(entry["versions"])} for name, entry in locked.items()
    }
    for event in events:
        entry = result.setdefault(event.name, {"owner": event.context, "versions": {}})
        entry["owner"] = event.context
        entry["versions"][str(event.version)] = _canonical(event.schema)
        entry["versions"] = dict(sorted(entry["versions"].items(), key=lambda kv: int(kv[0])))
        if readers is not None:
            entry["consumers"] = readers.get(event.name, {})
    return dict(sorted(result.items()))


def write_lock(path: Path, events: dict[str, Any]) -> None:
    document = {
        "format": LOCK_FORMAT,
        "comment": (
            "Every event type's JSON Schema per version, and the contexts that consume it "
            "with the version each reads (derived from their handlers). Written by "
            "`manage.py contracts lock`, which refuses an incompatible change under a locked "
            "version: see docs/events.md, 'Changing an event's schema'."
        ),
        "events": events,
    }
    path.write_text(json.dumps(document, indent=2, sort_keys=False, ensure_ascii=False) + "\n")
