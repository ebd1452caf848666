"""
`manage.py contracts`: the contracts between contexts, checked and documented.

    contracts openapi [--check] write each context's OpenAPI document (contracts/openapi/)
    contracts map [--check]     render docs/context-map.md from the contracts
    contracts lock [--check]    record each event type's schema per version, and its consumers
    contracts versions [--check] who needs which version of each event type; refuse a
                                consumer left without its version (rolling upgrades)
    contracts verify            every callee serves the operations its contract declares

`make lint` runs them all (with `--check`); each exits non-zero with what is
wrong. See docs/architecture.md ("Contracts") and docs/events.md ("Changing an
event's schema" and "Upgrading an event's major version").
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from importlib import import_module
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave.core import declarations
from cleave.core.declarations import EventType, all_contracts
from cleave_tools.checks import conformance, contextmap, eventlock, eventversions, openapi


def default_map_path() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "context-map.md"


def default_lock_path() -> Path:
    module = import_module(declarations.package())
    return Path(module.__file__).resolve().parent / "events.lock.json"


def published_events() -> list[EventType]:
    """Every event type of every contract, owned by its context."""
    return [
        replace(event, context=contract.label)
        for contract in all_contracts()
        for event in contract.events
    ]


def map_difference(path: Path) -> str:
    """A diff of the committed map against a fresh rendering; empty when it is up to date."""
    current = path.read_text()
    fresh = contextmap.render(current, contextmap.gather())
    if fresh == current:
        return ""
    return "".join(
        difflib.unified_diff(
            current.splitlines(keepends=True),
            fresh.splitlines(keepends=True),
            fromfile=f"{path.name} (committed)",
            tofile=f"{path.name} (from the contracts)",
        )
    )


def declaration_problems() -> list[str]:
    """Contracts against the views serving them."""
    return conformance.check_contracts(all_contracts())


def default_contracts_dir() -> Path:
    module = import_module(declarations.package())
    return Path(module.__file__).resolve().parent


class Command(BaseCommand):
    help = "Check and document the contracts between contexts: map, lock, verify."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        mapper = sub.add_parser("map", help="render docs/context-map.md from the contracts")
        mapper.add_argument("--check", action="store_true", help="fail if the file is stale")
        mapper.add_argument("--path", type=Path, default=None)
        locker = sub.add_parser("lock", help="record event schemas per version")
        locker.add_argument(
            "--check", action="store_true", help="fail on an incompatible or unrecorded change"
        )
        locker.add_argument("--path", type=Path, default=None)
        versions = sub.add_parser(
            "versions", help="who needs which version of each event type, and is it published"
        )
        versions.add_argument(
            "--check", action="store_true", help="fail if a consumer would lack its version"
        )
        versions.add_argument("--path", type=Path, default=None, help="the event lock")
        sub.add_parser("verify", help="compare each operation with the view serving it")
        documents = sub.add_parser("openapi", help="write each context's OpenAPI document")
        documents.add_argument("--check", action="store_true", help="fail if one is stale")

    def handle(self, *args, action: str, **options):
        try:
            return getattr(self, f"_{action}")(**options)
        except (LookupError, ValueError, RuntimeError) as exc:
            raise CommandError(str(exc)) from None

    def _map(self, *, check: bool, path: Path | None, **_):
        path = path or default_map_path()
        if not path.exists():
            raise CommandError(
                f"{path} does not exist: it holds the hand-written prose around the "
                f"generated blocks ({', '.join(contextmap.SECTIONS)})"
            )
        if check:
            difference = map_difference(path)
            if difference:
                raise CommandError(
                    f"{path} is out of date with the contracts; run "
                    f"`python manage.py contracts map`.\n{difference[:4000]}"
                )
            self.stdout.write(f"{path.name} is up to date.")
            return
        current = path.read_text()
        fresh = contextmap.render(current, contextmap.gather())
        if fresh != current:
            path.write_text(fresh)
            self.stdout.write(f"Wrote {path}.")
        else:
            self.stdout.write(f"{path.name} was up to date.")

    def _versions(self, *, check: bool, path: Path | None, **_):
        path = path or default_lock_path()
        locked = eventlock.read_lock(path)
        events = published_events()
        declared = eventlock.readers(events)
        problems = eventversions.problems(events, locked, declared)
        if check:
            if problems:
                raise CommandError(_orphaned(problems))
            needed = sum(len(by) for by in declared.values())
            self.stdout.write(
                f"Every consumer's version is published ({len(events)} event types, "
                f"{needed} consumers)."
            )
            return
        self.stdout.write(eventversions.render(events, locked, declared), ending="")
        if problems:
            raise CommandError(_orphaned(problems))

    def _lock(self, *, check: bool, path: Path | None, **_):
        path = path or default_lock_path()
        locked = eventlock.read_lock(path)
        events = published_events()
        declared = eventlock.readers(events)
        readers = eventlock.consumers(events)
        verdict = eventlock.check_lock(events, locked, readers)
        if not check:
            # the lock never records a state that leaves a consumer without its version
            problems = eventversions.problems(events, locked, declared)
            if problems:
                raise CommandError(_orphaned(problems))
        if verdict.breaking:
            raise CommandError(
                "Event schemas changed incompatibly under a locked version; bump the version "
                "(docs/events.md, 'Changing an event's schema'):\n  "
                + "\n  ".join(verdict.breaking)
            )
        if check:
            if verdict.unrecorded:
                raise CommandError(
                    f"{path.name} does not record: "
                    + "; ".join(verdict.unrecorded)
                    + ". Run `python manage.py contracts lock`."
                )
            self.stdout.write(f"{path.name} is up to date ({len(events)} event types).")
            return
        if verdict.unrecorded or not path.exists():
            eventlock.write_lock(path, eventlock.updated_lock(events, locked, readers))
            for line in verdict.unrecorded:
                self.stdout.write(f"recorded {line}")
            self.stdout.write(f"Wrote {path}.")
        else:
            self.stdout.write(f"{path.name} was up to date.")

    def _verify(self, **_):
        problems = declaration_problems()
        if problems:
            raise CommandError(
                f"{len(problems)} disagreement(s) with the contracts:\n  " + "\n  ".join(problems)
            )
        operations = sum(len(contract.operations) for contract in all_contracts())
        self.stdout.write(f"{operations} operations agree with the views serving them.")

    def _openapi(self, *, check: bool, **_):
        contracts_dir = default_contracts_dir()
        if check:
            stale = openapi.stale(contracts_dir)
            if stale:
                raise CommandError(
                    f"The OpenAPI documents of {', '.join(stale)} differ from what the views "
                    "describe; run `python manage.py contracts openapi`."
                )
            self.stdout.write("The contexts' OpenAPI documents are up to date.")
            return
        changed = openapi.write(contracts_dir)
        for label in changed:
            self.stdout.write(f"Wrote {openapi.folder(contracts_dir) / (label + '.json')}.")
        if not changed:
            self.stdout.write("The contexts' OpenAPI documents were up to date.")


def _orphaned(problems: list[str]) -> str:
    return (
        "A consumer would be left without the version of an event it reads "
        "(docs/events.md, 'Upgrading an event's major version'):\n  " + "\n  ".join(problems)
    )
