"""Who needs which version of an event, and the check that no consumer is left without it."""

from __future__ import annotations

import json
from dataclasses import replace
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from cleave.core.declarations import MONEY, EventType, obj
from cleave_tools.checks import eventversions
from cleave_tools.checks.eventlock import Reader
from cleave_tools.management.commands import contracts as command

V1 = obj({"total": MONEY})
V2 = obj({"amount": MONEY})
EVENT = EventType("thing.priced", schema=V2, version=2, context="shop")
DOWNCASTING = replace(EVENT, downcasters={1: lambda data: {"total": data["amount"]}})
LOCKED = {"thing.priced": {"owner": "shop", "versions": {"1": V1, "2": V2}, "consumers": {}}}


def locked_with(**consumers: int) -> dict:
    return {"thing.priced": {**LOCKED["thing.priced"], "consumers": consumers}}


def test_a_consumer_of_the_old_version_is_orphaned_unless_the_publisher_downcasts_to_it():
    declared = {"thing.priced": {"stats": Reader("stats", 1, (1,))}}

    (problem,) = eventversions.problems([EVENT], LOCKED, declared)

    assert problem.startswith("thing.priced: stats reads v1 (takes v1) but shop publishes only v2")
    assert "declare a downcaster to v1" in problem
    assert eventversions.problems([DOWNCASTING], LOCKED, declared) == []


def test_the_locked_release_of_a_consumer_still_needs_its_version_after_it_moved_on():
    # today's stats reads v2, but the release the lock records (still running) reads v1
    declared = {"thing.priced": {"stats": Reader("stats", 2, (2,))}}

    (problem,) = eventversions.problems([EVENT], locked_with(stats=1), declared)

    assert "the locked release of stats reads v1" in problem
    assert eventversions.problems([DOWNCASTING], locked_with(stats=1), declared) == []
    # once a release where stats reads v2 is locked, the downcaster may go
    assert eventversions.problems([EVENT], locked_with(stats=2), declared) == []


def test_a_consumer_upgraded_first_upcasts_what_the_old_publisher_still_sends():
    old_publisher = EventType("thing.priced", schema=V1, version=1, context="shop")
    declared = {"thing.priced": {"stats": Reader("stats", 2, (2, 1))}}

    # the consumer names v2, which this (older) contract never released: refused...
    (problem,) = eventversions.problems([old_publisher], {}, declared)
    assert "stats reads v2, which shop never released" in problem
    # ...while against v2's contract, its upcaster from v1 serves it from either version
    assert eventversions.problems([EVENT], LOCKED, declared) == []
    assert Reader("stats", 2, (2, 1)).served_by((1,))


def test_a_downcaster_to_a_version_never_released_is_refused():
    locked = {"thing.priced": {"owner": "shop", "versions": {"2": V2}, "consumers": {}}}

    (problem,) = eventversions.problems([DOWNCASTING], locked, {})

    assert "downcasts to v1, a version the lock does not record" in problem


def test_the_view_says_who_reads_which_version_and_what_is_published():
    declared = {"thing.priced": {"stats": Reader("stats", 2, (2, 1))}}

    table = eventversions.render([DOWNCASTING], locked_with(stats=1, mail=1), declared)

    assert table.splitlines() == [
        "thing.priced: shop publishes v2 (and v1 by downcasting)",
        "  mail           no longer subscribes; locked release reads v1",
        "  stats          reads v2 (upcasts from v1); locked release reads v1",
    ]


# --- the command, on the project's own events -----------------------------------------------


def test_the_project_leaves_no_consumer_without_its_version():
    out = StringIO()
    call_command("contracts", "versions", "--check", stdout=out)
    assert "Every consumer's version is published" in out.getvalue()

    out = StringIO()
    call_command("contracts", "versions", stdout=out)
    assert "order.cancelled: orders publishes v2\n  analytics      reads v2\n" in out.getvalue()


def test_a_major_version_without_a_downcaster_is_refused_until_one_is_declared(
    tmp_path, monkeypatch
):
    # given order.confirmed bumped to v2 while analytics and notifications still read v1
    lock = tmp_path / "events.lock.json"
    lock.write_text(command.default_lock_path().read_text())
    today = command.published_events()
    confirmed = next(e for e in today if e.name == "order.confirmed")
    v2 = replace(confirmed, version=2, schema=obj({**confirmed.schema["properties"], "note": {}}))

    def publishing(event: EventType) -> None:
        events = [event if e.name == event.name else e for e in today]
        monkeypatch.setattr(command, "published_events", lambda: events)

    publishing(v2)
    with pytest.raises(CommandError, match=r"analytics reads v1 \(takes v1\) but orders"):
        call_command("contracts", "versions", "--check", "--path", str(lock))
    with pytest.raises(CommandError, match="would be left without the version"):
        call_command("contracts", "lock", "--path", str(lock))

    # when orders keeps publishing v1 through a downcaster
    def to_v1(data: dict) -> dict:
        return {key: value for key, value in data.items() if key != "note"}

    publishing(replace(v2, downcasters={1: to_v1}))

    # then the check passes, and the lock records v2 beside v1
    call_command("contracts", "versions", "--check", "--path", str(lock), stdout=StringIO())
    call_command("contracts", "lock", "--path", str(lock), stdout=StringIO())
    entry = json.loads(lock.read_text())["events"]["order.confirmed"]
    assert list(entry["versions"]) == ["1", "2"]
    assert entry["versions"]["1"] == json.loads(json.dumps(confirmed.schema))
    assert entry["consumers"] == {"analytics": 1, "notifications": 1}
