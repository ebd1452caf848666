"""
What a context publishes, declared once in its contract (`contracts/<label>.py`):
its event types (name, version, JSON Schema of the payload), its operations
(the calls other contexts or services may make: method, path, permission, who
may call), and the `ContextContract` gathering them. Also where each
context's contract is found: `<CLEAVE_CONTRACTS_PACKAGE>.<label>`, loaded by
name, so `cleave` never imports the contracts.

An operation's request, query and answer shapes are not written here: they
come from the callee's serializers, through the OpenAPI document drf-spectacular
generates for its views, committed beside its contract
(`contracts/openapi/<label>.json`, kept current by `manage.py contracts openapi
--check` in `make lint`). A caller's body is checked against that document
before anything leaves (`Operation.request_body()`), so a field the callee does
not take is a programming error (`ContractViolation`), raised at the call site,
never a failure the resilience layer would retry.

The event lock (`contracts/events.lock.json`, written by `manage.py contracts
lock`) records every released version of every event type and which contexts
consume it; a process learns from it who, served elsewhere, subscribes to
what it publishes (`event_lock()`).
"""

from __future__ import annotations

import copy
import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module, resources
from typing import Any
from urllib.parse import quote

import fastjsonschema
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from jsonschema import Draft202012Validator, ValidationError

# --- JSON Schema checks (event payloads and call bodies) -------------------------------

# The formats the fast check knows, decided by the validator's own checkers.
_FAST_FORMATS = {
    name: (lambda value, name=name: Draft202012Validator.FORMAT_CHECKER.conforms(value, name))
    for name in Draft202012Validator.FORMAT_CHECKER.checkers
}


def compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any] | None:
    """
    `schema` compiled to Python by fastjsonschema, with the validator's own
    format checkers: it accepts a payload in a few microseconds, where the
    interpreting validator takes a hundred or more. It may be stricter than
    the validator (a `$` that refuses a trailing newline), never more lenient,
    so it only ever says "valid"; anything it refuses is judged, and
    explained, by the validator. None when it cannot compile the schema.
    """
    try:
        return fastjsonschema.compile(schema, formats=_FAST_FORMATS)
    except Exception:  # a schema it cannot compile is left to the validator
        return None


class SchemaCheck:
    """A JSON Schema compiled once: a fast yes, and the validator's explanation of a no."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.schema = schema
        self._fast = compile_fast(schema)
        self._validator = Draft202012Validator(
            schema, format_checker=Draft202012Validator.FORMAT_CHECKER
        )

    def errors(self, data: Any) -> list[ValidationError]:
        """Every error in `data`, in path order; none (and fast) when it is valid."""
        if self._fast is not None:
            try:
                self._fast(data)  # the common case: valid, in microseconds
                return []
            except fastjsonschema.JsonSchemaException:
                pass  # judged, and explained, by the validator
        if self._validator.is_valid(data):
            return []
        return sorted(self._validator.iter_errors(data), key=lambda e: list(map(str, e.path)))


def explain(error: ValidationError) -> str:
    """One validation error as a caller reads it: where, and what is wrong."""
    where = ".".join(str(part) for part in error.absolute_path) or "(top)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - known)
        takes = ", ".join(sorted(known)) or "nothing"
        return f"{where}: {', '.join(unexpected)} not accepted (takes {takes})"
    return f"{where}: {error.message}"


# --- event types -------------------------------------------------------------------------


class InvalidEventPayload(ValueError):
    """A payload does not match its event type's schema."""

    def __init__(self, type_name: str, message: str, path: str = "") -> None:
        super().__init__(f"{type_name}: {path + ': ' if path else ''}{message}")
        self.type_name = type_name
        self.path = path


Payload = dict[str, Any]
# A payload of one version turned into the shape of the next (upcaster) or the previous one
# (downcaster); a plain function of the payload, pure and deterministic.
Caster = Callable[[Payload], Payload]


@dataclass(frozen=True)
class EventType:
    """
    A published event type. `schema` is a JSON Schema for `data` at `version`.

    `downcasters` keeps a released major version alive through a rolling
    upgrade: `{N: f}` turns a payload of version N+1 into one of version N,
    and every message then carries, beside the current payload, the payload
    of each version the chain reaches (`cleave.messaging.versions`), so a
    consumer still on version N finds its own. Declared with the contract,
    kept while a consumer declares N (`manage.py contracts versions --check`).
    """

    name: str
    schema: dict[str, Any]
    version: int = 1
    description: str = ""
    context: str | None = field(default=None, compare=False)
    downcasters: Mapping[int, Caster] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)
        for target, caster in self.downcasters.items():
            if not isinstance(target, int) or not 1 <= target < self.version:
                raise ValueError(
                    f"{self.name} v{self.version}: a downcaster targets an older version "
                    f"(1 to {self.version - 1}), not {target!r}"
                )
            if not callable(caster):
                raise ValueError(f"{self.name}: the downcaster to v{target} is not a function")

    @property
    def downcast_versions(self) -> tuple[int, ...]:
        """The older versions published beside the current one: the downcasters' unbroken chain."""
        reached = []
        for target in range(self.version - 1, 0, -1):
            if target not in self.downcasters:
                break
            reached.append(target)
        return tuple(reached)

    def __str__(self) -> str:
        return self.name

    @cached_property
    def _check(self) -> SchemaCheck:
        """Compiled once per type: building a validator costs more than validating."""
        return SchemaCheck(self.schema)

    def validate(self, data: Any) -> None:
        errors = self._check.errors(data)
        if errors:
            path = ".".join(str(part) for part in errors[0].absolute_path)
            raise InvalidEventPayload(self.name, errors[0].message, path)


def type_name(event: EventType | str) -> str:
    """An event type's name, given its declaration (or, for globs and tests, a name)."""
    return event.name if isinstance(event, EventType) else event


def obj(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    """Shorthand for a closed JSON-Schema object; every property required by default."""
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


UUID = {"type": "string", "format": "uuid"}
MONEY = {"type": "string", "pattern": r"^-?\d+(\.\d{1,4})?$"}
CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$"}
STRING = {"type": "string"}
NULLABLE_STRING = {"type": ["string", "null"]}
POSITIVE_INT = {"type": "integer", "minimum": 1}
DATETIME = {"type": "string", "format": "date-time"}


# --- operations ----------------------------------------------------------------------------

METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Keyword arguments of ServiceClient.call(); a path parameter may not take their names.
RESERVED = frozenset({"operation", "json", "params", "headers", "idempotency_key"})
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PERMISSION = re.compile(r"^[a-z][a-z0-9_]*:[a-z*][a-z0-9_*]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ContractViolation(TypeError):
    """
    A call that breaks its contract: a field the callee does not take, a missing
    path parameter, a caller the operation does not admit. A bug in the caller,
    not a failure of the callee: it is not technical
    (`cleave.core.errors.is_technical`), so nothing retries it.
    """


@dataclass(frozen=True)
class Problem:
    """A problem answer a caller may act on: its status, the code ending its `type`, when."""

    status: int
    code: str
    when: str = ""

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"Problem {self.code!r}: status {self.status} is not 4xx or 5xx")


@dataclass(frozen=True)
class Operation:
    """
    One call of a context's published API.

    `path` is relative to the context's `/api/<label>` and names its parameters
    in braces (`/reservations/{reservation_id}/commit`). `permission` is what
    the caller's service token must hold (None: public); the view serving the
    operation names it (`operation = ...`) and asks exactly this. `callers` are
    the contexts that call it: their service tokens are granted its permission
    (`cleave.calls.operations.grants_of`), and no other context may call it.
    Its request, query and answer come from the callee's OpenAPI document.
    """

    context: str
    name: str
    method: str
    path: str
    permission: str | None
    callers: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        where = f"Operation {self.context}.{self.name}"
        if not _NAME.match(self.name) or not _NAME.match(self.context):
            raise ValueError(f"{where}: context and name are lower_snake_case")
        if self.method not in METHODS:
            raise ValueError(f"{where}: method {self.method!r} is not one of {sorted(METHODS)}")
        if not self.path.startswith("/"):
            raise ValueError(f"{where}: path {self.path!r} must start with '/'")
        reserved = RESERVED.intersection(self.path_parameters)
        if reserved:
            raise ValueError(f"{where}: path parameters may not be named {sorted(reserved)}")
        if self.permission is not None:
            if not _PERMISSION.match(self.permission):
                raise ValueError(f"{where}: permission {self.permission!r} is not 'context:action'")
            if self.permission.split(":")[0] != self.context:
                raise ValueError(f"{where}: permission {self.permission!r} is not {self.context}'s")
        for caller in self.callers:
            if not _NAME.match(caller) or caller == self.context:
                raise ValueError(f"{where}: {caller!r} cannot be one of its callers")

    @property
    def qualname(self) -> str:
        return f"{self.context}.{self.name}"

    @property
    def api_path(self) -> str:
        """The path template as served and documented: `/api/<label>` + path."""
        return f"/api/{self.context}{self.path}"

    @property
    def path_parameters(self) -> tuple[str, ...]:
        return tuple(_PARAMETER.findall(self.path))

    def __str__(self) -> str:
        return f"{self.qualname} ({self.method} {self.path})"

    # --- what a caller sends ---------------------------------------------------------

    def build_path(self, values: Mapping[str, Any]) -> str:
        """The path with its parameters filled in (each one quoted); refuses missing or extra."""
        expected = set(self.path_parameters)
        missing = sorted(expected - set(values))
        extra = sorted(set(values) - expected)
        if missing or extra:
            said = []
            if missing:
                said.append(f"missing {', '.join(missing)}")
            if extra:
                said.append(f"unknown {', '.join(extra)}")
            raise ContractViolation(
                f"{self.qualname}: path parameters {'; '.join(said)} (the path is {self.path!r})"
            )
        for name, value in values.items():
            if value is None or str(value) == "":
                raise ContractViolation(f"{self.qualname}: path parameter {name} is empty")
        return _PARAMETER.sub(lambda match: quote(str(values[match.group(1)]), safe=""), self.path)

    def request_body(self, body: Any) -> Any:
        """`body` as it will be sent (JSON types only), once checked against the callee's."""
        check = self.shapes.request
        if check is None:
            if body is not None:
                raise ContractViolation(f"{self.qualname} takes no request body")
            return None
        sent = _as_json({} if body is None else body)
        self._refuse(check, sent, "request body")
        return sent

    def query_params(self, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """`params` as they will be sent, once checked against the callee's query."""
        check = self.shapes.query
        if check is None:
            if params:
                raise ContractViolation(f"{self.qualname} takes no query parameters")
            return None
        sent = _as_json(dict(params or {}))
        self._refuse(check, sent, "query")
        return sent

    def answer_errors(self, data: Any, status: int | None = None) -> list[str]:
        """What in an answer's body disagrees with the callee's (tests: callers tolerate more)."""
        shapes = self.shapes
        check = shapes.answers.get(status if status is not None else shapes.statuses[0])
        return [] if check is None else [explain(error) for error in check.errors(data)]

    @property
    def statuses(self) -> tuple[int, ...]:
        """The success statuses the callee documents (`201, 200` for a create that repeats)."""
        return self.shapes.statuses

    @cached_property
    def shapes(self) -> Shapes:
        return Shapes.of(self)

    def _refuse(self, check: SchemaCheck, data: Any, part: str) -> None:
        errors = check.errors(data)
        if errors:
            explained = "; ".join(explain(error) for error in errors[:5])
            raise ContractViolation(f"{self.qualname}: the {part} breaks the contract: {explained}")


@dataclass(frozen=True)
class Shapes:
    """An operation's request, query and answers, from the callee's OpenAPI document."""

    request: SchemaCheck | None
    query: SchemaCheck | None
    answers: dict[int, SchemaCheck]
    statuses: tuple[int, ...]

    @classmethod
    def of(cls, operation: Operation) -> Shapes:
        document = openapi_document(operation.context)
        item = document.get("paths", {}).get(operation.api_path, {}).get(operation.method.lower())
        if item is None:
            raise ContractViolation(
                f"{operation.qualname}: {operation.method} {operation.api_path} is not in "
                f"{operation.context}'s OpenAPI document (contracts/openapi/"
                f"{operation.context}.json): run `manage.py contracts openapi`"
            )
        body = (item.get("requestBody") or {}).get("content", {}).get("application/json")
        request = None
        if body is not None:
            request = SchemaCheck(json_schema(body["schema"], document, closed=True))
        parameters = [p for p in item.get("parameters", []) if p.get("in") == "query"]
        query = None
        if parameters:
            query = SchemaCheck(
                {
                    "type": "object",
                    "properties": {
                        p["name"]: json_schema(p.get("schema", {}), document, closed=True)
                        for p in parameters
                    },
                    "required": sorted(p["name"] for p in parameters if p.get("required")),
                    "additionalProperties": False,
                }
            )
        answers: dict[int, SchemaCheck] = {}
        statuses: list[int] = []
        for code, answer in item.get("responses", {}).items():
            if not code.isdigit() or not 200 <= int(code) <= 299:
                continue
            statuses.append(int(code))
            content = (answer.get("content") or {}).get("application/json")
            if content is not None:
                answers[int(code)] = SchemaCheck(json_schema(content["schema"], document))
        return cls(request, query, answers, tuple(sorted(statuses, key=_success_order)))


def _success_order(status: int) -> tuple[int, int]:
    # 201 before 200: a create answers 201, and 200 only for a repeated key
    return (0 if status == 201 else 1, status)


_COMBINED = {"allOf", "anyOf", "oneOf"}
_NESTED = {"items", "additionalProperties", "not", *_COMBINED}


def json_schema(node: Any, document: dict[str, Any], *, closed: bool = False) -> Any:
    """
    An OpenAPI 3.0 schema as JSON Schema: references resolved, `nullable` as a
    type of its own, annotations dropped; with `closed`, an object takes no
    property it does not list (what a caller sends; answers stay open).
    """
    if isinstance(node, list):
        return [json_schema(item, document, closed=closed) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return json_schema(target, document, closed=closed)
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in {"nullable", "readOnly", "writeOnly", "example", "examples", "description"}:
            continue
        if key == "properties":
            out[key] = {name: json_schema(v, document, closed=closed) for name, v in value.items()}
        elif (
            key in {"items", "additionalProperties", "not"} and isinstance(value, dict)
        ) or key in {"allOf", "anyOf", "oneOf"}:
            out[key] = json_schema(value, document, closed=closed)
        else:
            out[key] = copy.deepcopy(value)
    if node.get("nullable"):
        if "type" in out:
            kinds = out["type"] if isinstance(out["type"], list) else [out["type"]]
            out["type"] = [*kinds, "null"]
        if "enum" in out and None not in out["enum"]:
            out["enum"] = [*out["enum"], None]
        if "type" not in out and "enum" not in out:
            out = {"anyOf": [out, {"type": "null"}]}
    if closed and out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


@dataclass(frozen=True)
class ContextContract:
    """Everything a context publishes: its event types and its operations."""

    label: str
    events: tuple[EventType, ...] = ()
    operations: tuple[Operation, ...] = ()
    description: str = ""
    _by_name: dict[str, Operation] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        where = f"The contract of {self.label!r}"
        _unique(where, "event type", (event.name for event in self.events))
        _unique(where, "operation", (operation.name for operation in self.operations))
        _unique(where, "route", (f"{op.method} {op.path}" for op in self.operations))
        for operation in self.operations:
            if operation.context != self.label:
                raise ValueError(f"{where} lists {operation.qualname}, another context's operation")
        object.__setattr__(self, "_by_name", {op.name: op for op in self.operations})

    def operation(self, name: str) -> Operation:
        try:
            return self._by_name[name]
        except KeyError:
            raise LookupError(f"{self.label} publishes no operation {name!r}") from None


def _unique(where: str, what: str, names: Iterable[str]) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise ValueError(f"{where} lists the {what} {name!r} twice")
        seen.add(name)


def _as_json(value: Any) -> Any:
    """The value as the wire carries it: UUIDs, decimals and dates become strings."""
    try:
        return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
    except TypeError as exc:
        raise ContractViolation(f"not JSON serialisable: {exc}") from None


# --- where contracts are found -----------------------------------------------------------

_contracts: dict[str, ContextContract] = {}
_documents: dict[str, dict[str, Any]] = {}
_lock_file: dict[str, Any] = {}
_lock = threading.Lock()

LOCK_FILE = "events.lock.json"
OPENAPI_FOLDER = "openapi"


def package() -> str:
    return settings.CLEAVE_CONTRACTS_PACKAGE


def contract_for(label: str) -> ContextContract:
    """The contract of context `label`; LookupError when it has none."""
    found = _contracts.get(label)
    if found is not None:
        return found
    with _lock:
        found = _contracts.get(label)
        if found is None:
            found = _contracts[label] = _load(label)
    return found


def all_contracts() -> list[ContextContract]:
    """Every context's contract, in `CLEAVE_ALL_CONTEXTS` order."""
    return [contract_for(label) for label in settings.CLEAVE_ALL_CONTEXTS]


def forget() -> None:
    """Load every contract, document and the lock again on next use (tests that swap them)."""
    with _lock:
        _contracts.clear()
        _documents.clear()
        _lock_file.clear()


def _load(label: str) -> ContextContract:
    name = f"{package()}.{label}"
    try:
        module = import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name in (name, package()):
            raise LookupError(
                f"Context {label!r} has no contract: expected a module {name} "
                "declaring a ContextContract (see docs/architecture.md, 'Contracts')"
            ) from None
        raise
    found = [
        value
        for value in vars(module).values()
        if isinstance(value, ContextContract) and value.label == label
    ]
    if len(found) != 1:
        raise LookupError(
            f"{name} must declare exactly one ContextContract labelled {label!r}, not {len(found)}"
        )
    return found[0]


def _read_json(*parts: str) -> Any:
    resource = resources.files(package()).joinpath(*parts)
    return json.loads(resource.read_text(encoding="utf-8"))


def openapi_document(label: str) -> dict[str, Any]:
    """Context `label`'s committed OpenAPI document (an empty one when it has none)."""
    found = _documents.get(label)
    if found is None:
        try:
            found = _read_json(OPENAPI_FOLDER, f"{label}.json")
        except FileNotFoundError:
            found = {"paths": {}}
        with _lock:
            _documents[label] = found
    return found


def event_lock() -> dict[str, Any]:
    """The event lock's types: owner, schema per version and consumers of each."""
    if not _lock_file:
        try:
            events = _read_json(LOCK_FILE).get("events", {})
        except FileNotFoundError:
            events = {}
        with _lock:
            _lock_file.clear()
            _lock_file.update(events)
    return _lock_file
