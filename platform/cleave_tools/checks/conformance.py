"""
Does each callee serve what its contract promises?

Every operation of every contract is compared with the view that serves its
path and method, as drf-spectacular describes that view in the project's
OpenAPI document (generated in this process from the views' serializers, so
it is the views' truth, not a second hand-written copy):

- the operation exists (path template, method), and the view requires the
  contract's permission (`ServicePermission`) or is public (`AllowAny`);
- request body and query (what a caller sends must be accepted): every
  property the contract sends exists in the view's schema with a type, enum
  and format the view accepts, and the two agree on which are required;
  a contract without a body meets a view that needs none;
- answer (what the view answers must be what callers read): every property
  the contract's answer lists exists in the view's answer for each of the
  contract's statuses, with a type, enum and format the contract allows, and
  is required there when the contract promises it;
- every notable problem's status is one the view documents.

Lengths, bounds and patterns are not compared: the callee validates them and
answers 400, which a caller sees at once in its tests. Written by hand:
drf-spectacular describes one server, and no library compares a caller's
declaration with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drf_spectacular.generators import EndpointEnumerator, SchemaGenerator
from rest_framework.permissions import AllowAny

from cleave.auth.permissions import ServicePermission
from cleave.core.declarations import ContextContract, Operation

JSON = "application/json"


def openapi_document() -> dict[str, Any]:
    """The project's OpenAPI document, as `manage.py spectacular` would write it."""
    return SchemaGenerator().get_schema(request=None, public=True)


def api_path(operation: Operation) -> str:
    """The operation's path as the service client calls it (`/api/<label>` + path)."""
    return f"/api/{operation.context}{operation.path}"


def check_contracts(
    contracts: list[ContextContract], document: dict[str, Any] | None = None
) -> list[str]:
    """Every disagreement between the contracts' operations and the views serving them."""
    document = openapi_document() if document is None else document
    problems: list[str] = []
    for contract in contracts:
        for operation in contract.operations:
            problems.extend(check_operation(operation, document))
    return problems


def check_operation(operation: Operation, document: dict[str, Any]) -> list[str]:
    """What in the view serving `operation` disagrees with it (empty: they agree)."""
    where = f"{operation.qualname} ({operation.method} {api_path(operation)})"
    served = document.get("paths", {}).get(api_path(operation), {}).get(operation.method.lower())
    if served is None:
        return [f"{where}: no view serves this path and method"]
    doc = _Document(document)
    problems: list[str] = []
    problems.extend(_check_permission(operation))
    problems.extend(_check_request(operation, served, doc))
    problems.extend(_check_query(operation, served, doc))
    problems.extend(_check_answers(operation, served, doc))
    documented = {int(code) for code in served.get("responses", {}) if code.isdigit()}
    for problem in operation.problems:
        if problem.status not in documented:
            problems.append(f"answers {problem.status} ({problem.code}), which the view never does")
    return [f"{where}: {problem}" for problem in problems]


# --- permission ---------------------------------------------------------------------------


def view_permission(operation: Operation) -> tuple[bool, str | None]:
    """
    (found, permission) for the view serving `operation`: the permission its
    `ServicePermission` requires, None when it admits anyone (`AllowAny`).
    """
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        if path != api_path(operation) or method != operation.method:
            continue
        view = callback.cls(**getattr(callback, "initkwargs", None) or {})
        classes = tuple(getattr(view, "permission_classes", ()))
        if any(_subclass(cls, ServicePermission) for cls in classes):
            required, _staff = ServicePermission.requirement(view, method)
            return True, required
        if classes and all(_subclass(cls, AllowAny) for cls in classes):
            return True, None
        names = ", ".join(cls.__name__ for cls in classes) or "none"
        return True, f"<{names}>"
    return False, None


def _subclass(value: Any, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)


def _check_permission(operation: Operation) -> list[str]:
    found, required = view_permission(operation)
    if not found or required == operation.permission:
        return []
    said = required or "nothing (public)"
    wanted = operation.permission or "nothing (public)"
    return [f"the view requires {said}, the contract says {wanted}"]


# --- request, query, answers -------------------------------------------------------------


def _check_request(operation: Operation, served: dict[str, Any], doc: _Document) -> list[str]:
    body = served.get("requestBody")
    if operation.request is None:
        if body is not None and body.get("required"):
            return ["the view requires a request body; the contract sends none"]
        return []
    schema = (body or {}).get("content", {}).get(JSON, {}).get("schema")
    if schema is None:
        return ["the contract sends a request body; the view takes no JSON body"]
    return _accepts(doc.resolve(schema), operation.request, "request", doc)


def _check_query(operation: Operation, served: dict[str, Any], doc: _Document) -> list[str]:
    if operation.query is None:
        return []
    parameters = [
        doc.resolve(parameter)
        for parameter in served.get("parameters", [])
        if doc.resolve(parameter).get("in") == "query"
    ]
    view = {
        "type": "object",
        "properties": {p["name"]: p.get("schema", {}) for p in parameters},
        "required": [p["name"] for p in parameters if p.get("required")],
    }
    return _accepts(view, operation.query, "query", doc)


def _check_answers(operation: Operation, served: dict[str, Any], doc: _Document) -> list[str]:
    problems: list[str] = []
    responses = served.get("responses", {})
    for status in operation.statuses:
        response = responses.get(str(status))
        if response is None:
            problems.append(f"the view never answers {status}")
            continue
        if operation.answer is None:
            continue
        schema = doc.resolve(response).get("content", {}).get(JSON, {}).get("schema")
        if schema is None:
            problems.append(f"the view's {status} answer has no JSON body")
            continue
        problems.extend(_promises(doc.resolve(schema), operation.answer, f"answer {status}", doc))
    return problems


# --- schema comparison --------------------------------------------------------------------


@dataclass
class _Document:
    document: dict[str, Any]

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        """Follow `$ref`s, and a lone `allOf` (how drf-spectacular wraps a nullable reference)."""
        seen = 0
        while True:
            seen += 1
            if seen > 50:
                raise ValueError("a $ref cycle in the OpenAPI document")
            if "$ref" in schema:
                target: Any = self.document
                for part in schema["$ref"].removeprefix("#/").split("/"):
                    target = target[part]
                schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
                continue
            if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
                rest = {k: v for k, v in schema.items() if k != "allOf"}
                schema = {**self.resolve(schema["allOf"][0]), **rest}
                continue
            return schema

    def alternatives(self, schema: dict[str, Any]) -> list[dict[str, Any]]:
        schema = self.resolve(schema)
        for keyword in ("oneOf", "anyOf"):
            if isinstance(schema.get(keyword), list):
                return [self.resolve(option) for option in schema[keyword]]
        return [schema]


def _types(schema: dict[str, Any]) -> set[str] | None:
    """The JSON types a schema admits (None: any); OpenAPI's `nullable` adds null."""
    declared = schema.get("type")
    if declared is None:
        values = schema.get("enum")
        if values is None:
            return None
        found = {_json_type(value) for value in values}
    else:
        found = set(declared) if isinstance(declared, list) else {declared}
    if schema.get("nullable"):
        found.add("null")
    return found


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _within(inner: set[str] | None, outer: set[str] | None) -> bool:
    """Every type of `inner` is one of `outer` (an integer is a number)."""
    if outer is None:
        return True
    if inner is None:
        return False
    return all(t in outer or (t == "integer" and "number" in outer) for t in inner)


def _fmt(types: set[str] | None) -> str:
    return "any type" if types is None else "/".join(sorted(types))


def _accepts(view: dict[str, Any], contract: dict[str, Any], at: str, doc: _Document) -> list[str]:
    """Problems if the view may refuse something the contract lets a caller send."""
    options = doc.alternatives(view)
    results = [_accepts_one(option, contract, at, doc) for option in options]
    return min(results, key=len) if results else []


def _accepts_one(view: dict[str, Any], contract: dict[str, Any], at: str, doc: _Document):
    problems: list[str] = []
    view_types, contract_types = _types(view), _types(contract)
    if not _within(contract_types, view_types):
        problems.append(
            f"{at}: the contract sends {_fmt(contract_types)}, the view takes {_fmt(view_types)}"
        )
        return problems
    if "enum" in view:
        extra = [v for v in contract.get("enum", [None]) if v not in view["enum"]]
        if "enum" not in contract or extra:
            problems.append(f"{at}: the contract sends values the view refuses ({extra or 'any'})")
    wanted = view.get("format")
    if wanted and contract.get("format") != wanted and not contract.get("pattern"):
        said = contract.get("format") or "any string"
        problems.append(f"{at}: the view takes format {wanted}, the contract sends {said}")
    if "properties" in contract:
        properties = view.get("properties", {})
        for name, schema in contract["properties"].items():
            if name not in properties:
                problems.append(f"{at}.{name}: the view does not take this field")
                continue
            problems.extend(_accepts(properties[name], schema, f"{at}.{name}", doc))
        view_required = set(view.get("required", []))
        contract_required = set(contract.get("required", []))
        for name in sorted(view_required - contract_required):
            problems.append(f"{at}.{name}: the view requires it, the contract does not")
        for name in sorted(contract_required - view_required):
            problems.append(f"{at}.{name}: the contract requires it, the view does not")
    if "items" in contract and "items" in view:
        problems.extend(_accepts(view["items"], contract["items"], f"{at}[]", doc))
    return problems


def _promises(view: dict[str, Any], contract: dict[str, Any], at: str, doc: _Document) -> list[str]:
    """Problems if the view may answer something a caller reading the contract does not expect."""
    problems: list[str] = []
    for option in doc.alternatives(view):
        problems.extend(_promises_one(option, contract, at, doc))
    return problems


def _promises_one(view: dict[str, Any], contract: dict[str, Any], at: str, doc: _Document):
    problems: list[str] = []
    view_types, contract_types = _types(view), _types(contract)
    if not _within(view_types, contract_types):
        problems.append(
            f"{at}: the view answers {_fmt(view_types)}, the contract expects "
            f"{_fmt(contract_types)}"
        )
        return problems
    if "enum" in contract:
        extra = [v for v in view.get("enum", [None]) if v not in contract["enum"]]
        if "enum" not in view or extra:
            problems.append(f"{at}: the view answers values the contract lacks ({extra or 'any'})")
    wanted = contract.get("format")
    if wanted and view.get("format") != wanted:
        problems.append(
            f"{at}: the contract expects format {wanted}, the view answers "
            f"{view.get('format') or 'any string'}"
        )
    if "properties" in contract:
        properties = view.get("properties", {})
        view_required = set(view.get("required", []))
        for name, schema in contract["properties"].items():
            if name not in properties:
                problems.append(f"{at}.{name}: the view does not answer this field")
                continue
            if name in contract.get("required", []) and name not in view_required:
                problems.append(f"{at}.{name}: the contract promises it, the view may omit it")
            problems.extend(_promises(properties[name], schema, f"{at}.{name}", doc))
        if contract.get("additionalProperties") is False:
            extra = sorted(set(properties) - set(contract["properties"]))
            if extra:
                problems.append(f"{at}: the view answers {extra}, the closed contract lacks them")
    if "items" in contract and "items" in view:
        problems.extend(_promises(view["items"], contract["items"], f"{at}[]", doc))
    return problems
