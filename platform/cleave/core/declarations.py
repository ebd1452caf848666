"""
What a context publishes, as its contract declares it: event types (name,
version, JSON Schema), operations (what other contexts may call), the
contract gathering them, and where each context's contract is found
(`<CLEAVE_CONTRACTS_PACKAGE>.<label>`, loaded by name: `cleave` never imports
the contracts).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from importlib import import_module
from typing import Any
from urllib.parse import quote

import fastjsonschema
from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from jsonschema import Draft202012Validator, ValidationError
from jsonschema.exceptions import SchemaError

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


class InvalidEventPayload(ValueError):
    """A payload does not match its event type's schema."""

    def __init__(self, type_name: str, message: str, path: str = "") -> None:
        super().__init__(f"{type_name}: {path + ': ' if path else ''}{message}")
        self.type_name = type_name
        self.path = path


@dataclass(frozen=True)
class EventType:
    """A published event type. `schema` is a JSON Schema for `data`."""

    name: str
    schema: dict[str, Any]
    version: int = 1
    description: str = ""
    context: str | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        Draft202012Validator.check_schema(self.schema)

    @cached_property
    def _validator(self) -> Draft202012Validator:
        """Compiled once per type: building a validator costs more than validating."""
        return Draft202012Validator(self.schema, format_checker=Draft202012Validator.FORMAT_CHECKER)

    @cached_property
    def _fast_check(self) -> Callable[[Any], Any] | None:
        return compile_fast(self.schema)

    def validate(self, data: Any) -> None:
        fast = self._fast_check
        if fast is not None:
            try:
                fast(data)
                return
            except fastjsonschema.JsonSchemaException:
                pass
        validator = self._validator
        if validator.is_valid(data):  # the common case, without sorting errors
            return
        error = next(iter(sorted(validator.iter_errors(data), key=lambda e: list(e.path))), None)
        if error is not None:
            path = ".".join(str(part) for part in error.absolute_path)
            raise InvalidEventPayload(self.name, error.message, path)


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


# --- from cleave.contracts.declarations


METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
# Keyword arguments of ServiceClient.call(); a path parameter may not take their names.
RESERVED = frozenset({"operation", "json", "params", "headers", "idempotency_key"})
_PARAMETER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_PERMISSION = re.compile(r"^[a-z][a-z0-9_]*:[a-z*][a-z0-9_*]*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class ContractViolation(TypeError):
    """
    A call that breaks its contract: a field the callee does not take, a missing
    path parameter, a permission the caller was never granted, an operation the
    caller did not declare. A bug in the caller, not a failure of the callee:
    it is not technical (`cleave.resilience.failures.is_technical`), so nothing
    retries it.
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
    in braces (`/reservations/{reservation_id}/commit`). `request` is the JSON
    Schema of the body (None: the call sends none), `query` that of the query
    parameters (an object), `answer` that of the body of a `statuses` answer.
    `permission` is what the caller's service token must hold (None: public).
    """

    context: str
    name: str
    method: str
    path: str
    permission: str | None
    request: dict[str, Any] | None = None
    query: dict[str, Any] | None = None
    answer: dict[str, Any] | None = None
    statuses: tuple[int, ...] = (200,)
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
        if not self.statuses or any(not 200 <= status <= 299 for status in self.statuses):
            raise ValueError(f"{where}: statuses {self.statuses} must be 2xx")
        for part, schema in (("request", self.request), ("query", self.query)):
            if schema is not None and schema.get("type") != "object":
                raise ValueError(f"{where}: the {part} schema must be an object")
        if self.request is not None and self.method == "GET":
            raise ValueError(f"{where}: a GET sends no body; declare `query` instead")
        for part, schema in (
            ("request", self.request),
            ("query", self.query),
            ("answer", self.answer),
        ):
            if schema is not None:
                try:
                    Draft202012Validator.check_schema(schema)
                except SchemaError as exc:
                    raise ValueError(f"{where}: invalid {part} schema: {exc.message}") from None

    @property
    def qualname(self) -> str:
        return f"{self.context}.{self.name}"

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
        """`body` as it will be sent (JSON types only), once checked against `request`."""
        if self.request is None:
            if body is not None:
                raise ContractViolation(f"{self.qualname} takes no request body")
            return None
        if body is None:
            body = {}
        sent = _as_json(body)
        self._refuse(self._request_validator, sent, "request body")
        return sent

    def query_params(self, params: Mapping[str, Any] | None) -> dict[str, Any] | None:
        """`params` as they will be sent, once checked against `query`."""
        if self.query is None:
            if params:
                raise ContractViolation(f"{self.qualname} takes no query parameters")
            return None
        sent = _as_json(dict(params or {}))
        self._refuse(self._query_validator, sent, "query")
        return sent

    def answer_errors(self, data: Any) -> list[str]:
        """What in an answer's body disagrees with `answer` (for tests: callers tolerate more)."""
        if self.answer is None:
            return []
        return [_explain(error) for error in _sorted_errors(self._answer_validator, data)]

    def _refuse(self, validator: Draft202012Validator | None, data: Any, part: str) -> None:
        if validator is None:
            return
        fast = self._fast_checks.get(part)
        if fast is not None:
            try:
                fast(data)  # the common case: valid, in microseconds
                return
            except fastjsonschema.JsonSchemaException:
                pass  # judged, and explained, by the validator
        errors = _sorted_errors(validator, data)
        if errors:
            explained = "; ".join(_explain(error) for error in errors[:5])
            raise ContractViolation(f"{self.qualname}: the {part} breaks the contract: {explained}")

    @cached_property
    def _fast_checks(self) -> dict[str, Any]:
        """The request's and the query's schemas compiled (`compile_fast`), by part."""
        compiled = {"request body": self.request, "query": self.query}
        return {
            part: check
            for part, schema in compiled.items()
            if schema is not None and (check := compile_fast(schema)) is not None
        }

    @cached_property
    def _request_validator(self) -> Draft202012Validator | None:
        return _validator(self.request)

    @cached_property
    def _query_validator(self) -> Draft202012Validator | None:
        return _validator(self.query)

    @cached_property
    def _answer_validator(self) -> Draft202012Validator | None:
        return _validator(self.answer)


@dataclass(frozen=True)
class ContextContract:
    """
    Everything a context publishes, and the operations of others it calls.

    `calls` is checked by the service client: a context calls only what its
    contract says it calls, so the context map (generated from contracts) shows
    every call there is.
    """

    label: str
    events: tuple[EventType, ...] = ()
    operations: tuple[Operation, ...] = ()
    calls: tuple[Operation, ...] = ()
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
        for operation in self.calls:
            if operation.context == self.label:
                raise ValueError(f"{where} calls its own {operation.qualname}")
        _unique(where, "call", (operation.qualname for operation in self.calls))
        object.__setattr__(self, "_by_name", {op.name: op for op in self.operations})

    def operation(self, name: str) -> Operation:
        try:
            return self._by_name[name]
        except KeyError:
            raise LookupError(f"{self.label} publishes no operation {name!r}") from None

    def calls_operation(self, operation: Operation) -> bool:
        return any(call.qualname == operation.qualname for call in self.calls)


# --- schema helpers ---------------------------------------------------------------------


def answer(properties: dict[str, Any], *, required: list[str] | None = None) -> dict[str, Any]:
    """
    An answer's object: open (the callee may add fields; a caller reads what it
    needs), every listed property promised unless `required` says otherwise.
    Requests are closed instead (`cleave.events.registry.obj`): a field the
    callee does not take is refused before it is sent.
    """
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
    }


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


def _validator(schema: dict[str, Any] | None) -> Draft202012Validator | None:
    if schema is None:
        return None
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _sorted_errors(validator: Draft202012Validator, data: Any) -> list[ValidationError]:
    return sorted(validator.iter_errors(data), key=lambda error: list(map(str, error.path)))


def _explain(error: ValidationError) -> str:
    where = ".".join(str(part) for part in error.absolute_path) or "(top)"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        unexpected = sorted(set(error.instance) - known)
        takes = ", ".join(sorted(known)) or "nothing"
        return f"{where}: {', '.join(unexpected)} not accepted (takes {takes})"
    return f"{where}: {error.message}"


# --- from cleave.contracts.registry


_contracts: dict[str, ContextContract] = {}
_lock = threading.Lock()


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
    """Load every contract again on next use (tests that swap the package)."""
    with _lock:
        _contracts.clear()


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
