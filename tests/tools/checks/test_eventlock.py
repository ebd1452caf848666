"""
Event schema compatibility: what may change under a locked version, and the lock.

The rules (docs/events.md, "Changing an event's schema"): old payloads must
stay valid under the new schema (rule 1: replay, publishers not yet
redeployed) and new payloads under the old one (rule 2: consumers still
holding the old schema validate with it).
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from cleave.core.declarations import (
    DATETIME,
    NULLABLE_STRING,
    POSITIVE_INT,
    STRING,
    UUID,
    EventType,
    obj,
)
from cleave_tools.checks import eventlock

LINES = {"type": "array", "minItems": 1, "items": obj({"sku": STRING, "quantity": POSITIVE_INT})}
BASE = obj(
    {
        "order_id": UUID,
        "note": NULLABLE_STRING,
        "reason": {"enum": ["declined", "timeout"]},
        "lines": LINES,
        "at": DATETIME,
    },
    required=["order_id", "reason", "lines", "at"],
)
OPEN = {"type": "object", "properties": {"order_id": UUID}, "required": ["order_id"]}


def changed(schema: dict, edit) -> dict:
    new = copy.deepcopy(schema)
    edit(new)
    return new


def rules(old: dict, new: dict) -> set[int]:
    return {change.breaks for change in eventlock.incompatible(old, new)}


@pytest.mark.parametrize(
    ("edit", "broken"),
    [
        (lambda s: s["properties"].pop("note"), {1}),
        (lambda s: s["properties"].__setitem__("remark", s["properties"].pop("note")), {1, 2}),
        (lambda s: s["required"].append("note"), {1}),
        (lambda s: s["required"].remove("at"), {2}),
        (lambda s: (s["properties"].update(total=STRING), s["required"].append("total")), {1, 2}),
        (lambda s: s["properties"].update(total=STRING), {2}),
        (lambda s: s["properties"].__setitem__("note", STRING), {1}),
        (lambda s: s["properties"].__setitem__("order_id", {"type": ["string", "null"]}), {2}),
        (lambda s: s["properties"]["reason"]["enum"].remove("timeout"), {1}),
        (lambda s: s["properties"]["reason"]["enum"].append("fraud"), {2}),
        (lambda s: s["properties"]["at"].pop("format"), {2}),
        (lambda s: s["properties"]["note"].update(maxLength=10), {1}),
        (lambda s: s["properties"]["lines"].update(minItems=2), {1}),
        (lambda s: s["properties"]["lines"]["items"]["properties"].pop("quantity"), {1}),
        (lambda s: s["properties"]["lines"]["items"]["properties"]["quantity"].pop("minimum"), {2}),
        (lambda s: s.update(additionalProperties=True), {2}),
        (lambda s: s["properties"]["at"].update(oneOf=[STRING]), {1}),
    ],
    ids=[
        "property-removed",
        "property-renamed",
        "optional-made-required",
        "required-made-optional",
        "required-property-added",
        "optional-property-added-to-a-closed-object",
        "type-narrowed",
        "type-widened",
        "enum-narrowed",
        "enum-widened",
        "format-dropped",
        "bound-added",
        "min-items-raised",
        "nested-property-removed",
        "nested-bound-removed",
        "object-opened",
        "unknown-keyword",
    ],
)
def test_an_incompatible_change_is_refused_under_the_same_version(edit, broken):
    assert rules(BASE, changed(BASE, edit)) == broken


@pytest.mark.parametrize(
    ("old", "edit"),
    [
        (BASE, lambda s: s["properties"]["order_id"].update(description="The order.")),
        (BASE, lambda s: s.update(title="Order cancelled", description="Why it was cancelled.")),
        (BASE, lambda s: s["required"].reverse()),
        (BASE, lambda s: s["properties"]["reason"].update(enum=["timeout", "declined"])),
        (OPEN, lambda s: s["properties"].update(note=STRING)),
    ],
    ids=[
        "description",
        "title",
        "required-order",
        "enum-order",
        "optional-property-added-to-an-open-object",
    ],
)
def test_a_compatible_change_passes(old, edit):
    new = changed(old, edit)

    assert new != old
    assert eventlock.incompatible(old, new) == []
    assert eventlock.schema_changes(old, new)  # seen, and recorded by the next lock


def test_the_order_of_properties_is_no_change_at_all():
    reordered = changed(
        BASE, lambda s: s.update(properties=dict(reversed(s["properties"].items())))
    )

    assert eventlock.schema_changes(BASE, reordered) == []


def test_a_change_names_its_path_and_the_rule_it_breaks():
    new = changed(BASE, lambda s: s["properties"]["lines"]["items"]["properties"].pop("sku"))

    (change,) = eventlock.incompatible(BASE, new)

    assert str(change) == (
        "data.lines[].sku: property removed (or renamed) "
        "(breaks rule 1: old payloads would be refused)"
    )


# --- the lock -----------------------------------------------------------------------------

EVENT = EventType("thing.happened", schema=BASE, version=1, context="shop")


def lock_of(*events: EventType) -> dict:
    return eventlock.updated_lock(list(events), {})


def test_a_new_event_type_is_accepted_and_must_be_recorded():
    verdict = eventlock.check_lock([EVENT], {})

    assert verdict.breaking == []
    assert verdict.unrecorded == ["thing.happened v1: a new event type"]


def test_an_incompatible_change_under_a_locked_version_breaks_the_check():
    new = replace(EVENT, schema=changed(BASE, lambda s: s["properties"].pop("note")))

    verdict = eventlock.check_lock([new], lock_of(EVENT))

    assert verdict.breaking == [
        "thing.happened v1: data.note: property removed (or renamed) "
        "(breaks rule 1: old payloads would be refused)"
    ]


def test_the_same_change_with_a_version_bump_is_recorded_beside_the_old_version():
    new = replace(EVENT, version=2, schema=changed(BASE, lambda s: s["properties"].pop("note")))
    locked = lock_of(EVENT)

    verdict = eventlock.check_lock([new], locked)
    updated = eventlock.updated_lock([new], locked)

    assert verdict.breaking == []
    assert verdict.unrecorded == ["thing.happened v2: a new version (the lock has up to v1)"]
    assert list(updated["thing.happened"]["versions"]) == ["1", "2"]
    assert eventlock.check_lock([new], updated).ok


def test_a_compatible_change_is_recorded_by_the_next_lock():
    new = replace(EVENT, schema=changed(BASE, lambda s: s.update(description="Now described.")))
    locked = lock_of(EVENT)

    verdict = eventlock.check_lock([new], locked)

    assert verdict.breaking == []
    assert verdict.unrecorded == ["thing.happened v1: a compatible change"]
    assert eventlock.check_lock([new], eventlock.updated_lock([new], locked)).ok


def test_a_version_going_down_breaks_the_check():
    locked = lock_of(replace(EVENT, version=2))

    (problem,) = eventlock.check_lock([EVENT], locked).breaking

    assert problem == "thing.happened v1: the lock already has v2; versions only go up"


def test_a_locked_type_no_context_publishes_any_more_breaks_the_check():
    (problem,) = eventlock.check_lock([], lock_of(EVENT)).breaking

    assert "locked but no context publishes it any more" in problem


# --- the command, on the project's own events -----------------------------------------------


def test_the_committed_lock_records_every_published_event_type():
    call_command("contracts", "lock", "--check")


def test_the_command_refuses_an_incompatible_change_and_records_a_compatible_one(tmp_path):
    from cleave_tools.management.commands.contracts import default_lock_path

    document = json.loads(default_lock_path().read_text())
    placed = document["events"]["order.placed"]["versions"]["1"]

    # given a lock in which order.placed had one more (required) property
    placed["properties"]["channel"] = STRING
    placed["required"].append("channel")
    breaking = tmp_path / "breaking.json"
    breaking.write_text(json.dumps(document))
    # when and then: today's schema lost it, under the same version
    with pytest.raises(CommandError, match=r"order.placed v1: data.channel: property removed"):
        call_command("contracts", "lock", "--check", "--path", str(breaking))
    with pytest.raises(CommandError, match="bump the version"):
        call_command("contracts", "lock", "--path", str(breaking))

    # given a lock that differs only in a description
    placed["properties"].pop("channel")
    placed["required"].remove("channel")
    placed["description"] = "an older wording"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(document))
    with pytest.raises(CommandError, match=r"order\.placed v1: a compatible change"):
        call_command("contracts", "lock", "--check", "--path", str(stale))
    call_command("contracts", "lock", "--path", str(stale))
    call_command("contracts", "lock", "--check", "--path", str(stale))
    assert (
        "description"
        not in json.loads(stale.read_text())["events"]["order.placed"]["versions"]["1"]
    )


def test_a_lock_that_is_not_one_is_refused_clearly(tmp_path):
    path = tmp_path / "events.lock.json"
    path.write_text('{"events": {}}')

    with pytest.raises(CommandError, match="is not an event lock of format 1"):
        call_command("contracts", "lock", "--check", "--path", str(path))
