"""
docs/context-map.md, rendered from the contracts.

The map's tables and diagram are generated from what the code declares: each
context's database alias and URL prefix (its `ContextConfig`), the events it
publishes (its contract) with the handlers subscribed to them (the event
registry, filled by every context's `handlers.py`), the operations it
publishes with the contexts that call them (`Operation.callers`) and their
shapes (the callee's OpenAPI document), and the grants each caller's tokens
carry as a result. The prose around them is
written by hand in the same file: only the blocks between

    <!-- generated: NAME -->  ...  <!-- /generated: NAME -->

are replaced (NAME is one of `SECTIONS`), so `--check` finds a map that no
longer says what the code does. Written by hand: it is a few tables.
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.conf import settings

from cleave.calls.operations import grants_of, operations_called_by
from cleave.core.declarations import (
    ContextContract,
    Operation,
    all_contracts,
    json_schema,
    openapi_document,
)
from cleave.core.registry import context_config_class, context_for_module, is_local
from cleave.messaging import subscriptions
from cleave_tools.checks import blocks

SECTIONS = ("diagram", "contexts", "events", "operations", "calls")


@dataclass(frozen=True)
class ContextInfo:
    label: str
    database: str
    url_prefix: str


@dataclass(frozen=True)
class Subscriber:
    event_pattern: str
    context: str
    handler: str


@dataclass(frozen=True)
class Landscape:
    """Everything the map shows, gathered once (`gather()`), rendered without Django."""

    contexts: list[ContextInfo]
    contracts: list[ContextContract]
    subscribers: list[Subscriber]
    grants: dict[str, list[str]]
    calls: dict[str, list[Operation]]


def gather() -> Landscape:
    """Read the landscape from this process; every context must be served here."""
    remote = [label for label in settings.CLEAVE_ALL_CONTEXTS if not is_local(label)]
    if remote:
        raise RuntimeError(
            f"The context map needs every context's handlers; this process does not serve "
            f"{', '.join(remote)}. Run it with CLEAVE_CONTEXTS unset."
        )
    contexts = []
    for label in settings.CLEAVE_ALL_CONTEXTS:
        config = context_config_class(label)
        contexts.append(
            ContextInfo(
                label=label,
                database=(config.database if config else "") or label,
                url_prefix=(config.url_prefix if config else "") or label,
            )
        )
    subscribers = []
    for subscription in subscriptions.all_subscriptions():
        config = context_for_module(subscription.func.__module__)
        if config is None:
            continue  # a test's or a tool's handler, not a context's
        subscribers.append(
            Subscriber(subscription.pattern, config.label, subscription.func.__name__)
        )
    return Landscape(
        contexts=contexts,
        contracts=all_contracts(),
        subscribers=sorted(set(subscribers), key=lambda s: (s.context, s.handler, s.event_pattern)),
        grants={label: grants_of(label) for label in settings.CLEAVE_ALL_CONTEXTS},
        calls={label: operations_called_by(label) for label in settings.CLEAVE_ALL_CONTEXTS},
    )


# --- rendering ----------------------------------------------------------------------------


def render(template: str, landscape: Landscape) -> str:
    """`template` with every generated block rendered anew; refuses a missing block."""
    renderers = {
        "diagram": _diagram,
        "contexts": _contexts,
        "events": _events,
        "operations": _operations,
        "calls": _calls,
    }
    return blocks.fill(
        template, SECTIONS, lambda name: renderers[name](landscape), what="The context map"
    )


def _subscribers_of(landscape: Landscape, type_name: str) -> list[Subscriber]:
    return [s for s in landscape.subscribers if fnmatch.fnmatchcase(type_name, s.event_pattern)]


def _callers_of(landscape: Landscape, operation: Operation) -> list[str]:
    return list(operation.callers)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ") or "—"


def _diagram(landscape: Landscape) -> str:
    events: dict[tuple[str, str], list[str]] = defaultdict(list)
    calls: dict[tuple[str, str], list[str]] = defaultdict(list)
    for contract in landscape.contracts:
        for event in contract.events:
            for context in sorted({s.context for s in _subscribers_of(landscape, event.name)}):
                events[(contract.label, context)].append(event.name)
        for operation in landscape.calls.get(contract.label, []):
            calls[(contract.label, operation.context)].append(operation.name)
    lines = ["```mermaid", "flowchart LR"]
    lines += [f"    {c.label}[{c.label}]" for c in landscape.contexts]
    for (publisher, subscriber), names in sorted(events.items()):
        lines.append(f'    {publisher} -. "{", ".join(names)}" .-> {subscriber}')
    for (caller, callee), names in sorted(calls.items()):
        lines.append(f'    {caller} -- "{", ".join(names)}" --> {callee}')
    lines.append("```")
    lines.append("")
    lines.append(
        "Dotted arrows: events, publisher to subscriber. Solid arrows: calls, caller to callee."
    )
    return "\n".join(lines)


def _contexts(landscape: Landscape) -> str:
    contracts = {c.label: c for c in landscape.contracts}
    rows = [
        "| context | database alias | URL prefix | publishes | subscribes to | calls |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for info in landscape.contexts:
        contract = contracts[info.label]
        published = ", ".join(f"`{e.name}`" for e in contract.events)
        subscribed = sorted(
            {s.event_pattern for s in landscape.subscribers if s.context == info.label}
        )
        called = sorted({op.context for op in landscape.calls.get(info.label, [])})
        rows.append(
            f"| **{info.label}** | `{info.database}` | `/api/{info.url_prefix}/` | "
            f"{_cell(published)} | {_cell(', '.join(f'`{p}`' for p in subscribed))} | "
            f"{_cell(', '.join(called))} |"
        )
    return "\n".join(rows)


def _events(landscape: Landscape) -> str:
    rows = [
        "| type | version | owner | data | subscribers (handler) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for contract in landscape.contracts:
        for event in contract.events:
            subscribers = ", ".join(
                f"{s.context} (`{s.handler}`)" for s in _subscribers_of(landscape, event.name)
            )
            data = summary(event.schema)
            description = f"{event.description} " if event.description else ""
            rows.append(
                f"| `{event.name}` | {event.version} | {contract.label} | "
                f"{_cell(description + data)} | {_cell(subscribers)} |"
            )
    return "\n".join(rows)


def _operations(landscape: Landscape) -> str:
    parts = []
    for contract in landscape.contracts:
        if not contract.operations:
            continue
        parts.append(f"#### {contract.label}\n")
        parts.append("| operation | call | permission | sends | answers | problems | called by |")
        parts.append("| --- | --- | --- | --- | --- | --- | --- |")
        for op in contract.operations:
            sends, answers = _shapes(op)
            problems = "; ".join(
                f"{p.status} `{p.code}`" + (f": {p.when}" if p.when else "") for p in op.problems
            )
            parts.append(
                f"| `{op.name}`<br>{_cell(op.description)} | `{op.method} /api/{op.context}"
                f"{op.path}` | {_cell(f'`{op.permission}`' if op.permission else 'public')} | "
                f"{_cell('; '.join(sends))} | {_cell(answers)} | {_cell(problems)} | "
                f"{_cell(', '.join(_callers_of(landscape, op)))} |"
            )
        parts.append("")
    return "\n".join(parts)


def _calls(landscape: Landscape) -> str:
    rows = [
        "| caller | granted (derived from the operations it calls) | calls (permission needed) |",
        "| --- | --- | --- |",
    ]
    for contract in landscape.contracts:
        grants = landscape.grants.get(contract.label, [])
        called = landscape.calls.get(contract.label, [])
        if not called:
            continue
        calls = "<br>".join(f"`{op.qualname}` ({op.permission or 'public'})" for op in called)
        rows.append(
            f"| **{contract.label}** | {_cell(', '.join(f'`{g}`' for g in grants))} | "
            f"{_cell(calls)} |"
        )
    return "\n".join(rows)


def _shapes(operation: Operation) -> tuple[list[str], str]:
    """What a call sends (query, body) and what it answers, read from the callee's document."""
    document = openapi_document(operation.context)
    item = document.get("paths", {}).get(operation.api_path, {}).get(operation.method.lower(), {})
    sends = []
    query = [p for p in item.get("parameters", []) if p.get("in") == "query"]
    if query:
        sends.append(
            "query "
            + summary(
                {
                    "type": "object",
                    "properties": {
                        p["name"]: json_schema(p.get("schema", {}), document) for p in query
                    },
                    "required": [p["name"] for p in query if p.get("required")],
                }
            )
        )
    body = (item.get("requestBody") or {}).get("content", {}).get("application/json")
    if body is not None:
        sends.append("body " + summary(json_schema(body["schema"], document)))
    answers = []
    for status in operation.statuses:
        content = (item["responses"][str(status)].get("content") or {}).get("application/json")
        shown = str(status)
        if content is not None and not answers:
            shown += " " + summary(json_schema(content["schema"], document))
        answers.append(shown)
    return sends, ", ".join(answers)


# --- schema summaries --------------------------------------------------------------------


def summary(schema: dict[str, Any]) -> str:
    """A one-line reading of a schema: `{order_id, lines[{sku, quantity}], reason?}`."""
    kind = schema.get("type")
    if "enum" in schema:
        return "one of " + " ".join(f"`{v}`" for v in schema["enum"])
    if kind == "array" or "items" in schema:
        return f"[{summary(schema.get('items', {}))}]" if schema.get("items") else "[…]"
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        fields = []
        for name, sub in schema.get("properties", {}).items():
            mark = "" if name in required else "?"
            nested = sub.get("type") in ("object", "array") or "enum" in sub
            fields.append(f"{name}{mark}" + (f" {summary(sub)}" if nested else ""))
        return "{" + ", ".join(fields) + "}"
    return str(kind or "any")
