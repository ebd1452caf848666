"""
Each context's OpenAPI document, committed beside its contract.

drf-spectacular describes the project's views from their serializers; the
document of one context is the part of it under `/api/<prefix>/`, with the
components those paths reference (and the security schemes). It is written
to `contracts/openapi/<label>.json`, where a caller's process finds it by name
(`cleave.core.declarations.openapi_document`) to check what it sends before
it sends it: the request and answer shapes of an operation are the callee's
serializers, never a second hand-written copy. `manage.py contracts openapi
--check` (in `make lint`) refuses a document the views no longer match.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from drf_spectacular.generators import SchemaGenerator

from cleave.core.declarations import OPENAPI_FOLDER
from cleave.core.registry import all_contexts


def project_document() -> dict[str, Any]:
    """The project's OpenAPI document, as `/api/schema/` serves it."""
    return SchemaGenerator().get_schema(request=None, public=True)


def context_documents(document: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Every local context's part of the project's document, by label."""
    document = project_document() if document is None else document
    return {
        cfg.label: context_document(document, cfg.label, f"/api/{cfg.url_prefix}/")
        for cfg in all_contexts()
    }


def context_document(document: dict[str, Any], label: str, prefix: str) -> dict[str, Any]:
    """The paths under `prefix`, and every component they reference, as a document."""
    paths = {path: item for path, item in document["paths"].items() if path.startswith(prefix)}
    components = document.get("components", {})
    schemas = components.get("schemas", {})
    wanted: set[str] = set()
    pending = _references(paths)
    while pending:
        name = pending.pop()
        if name in wanted or name not in schemas:
            continue
        wanted.add(name)
        pending |= _references(schemas[name])
    kept: dict[str, Any] = {"schemas": {name: schemas[name] for name in sorted(wanted)}}
    if "securitySchemes" in components:
        kept["securitySchemes"] = components["securitySchemes"]
    return {
        "openapi": document["openapi"],
        "info": {**document["info"], "title": f"{document['info']['title']}: {label}"},
        "paths": paths,
        "components": kept,
    }


def _references(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
            found.add(ref.rsplit("/", 1)[1])
        for value in node.values():
            found |= _references(value)
    elif isinstance(node, list):
        for value in node:
            found |= _references(value)
    return found


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def folder(contracts_dir: Path) -> Path:
    return contracts_dir / OPENAPI_FOLDER


def stale(contracts_dir: Path) -> list[str]:
    """The documents that differ from what the views describe (or are missing)."""
    found = []
    for label, document in context_documents().items():
        path = folder(contracts_dir) / f"{label}.json"
        if not path.exists() or path.read_text() != render(document):
            found.append(label)
    return found


def write(contracts_dir: Path) -> list[str]:
    """Write every context's document; the labels whose file changed."""
    target = folder(contracts_dir)
    target.mkdir(exist_ok=True)
    changed = []
    for label, document in context_documents().items():
        path = target / f"{label}.json"
        text = render(document)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            changed.append(label)
    return changed
