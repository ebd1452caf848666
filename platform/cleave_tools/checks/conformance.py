"""
Does each callee serve what its contract declares?

An operation's shapes are the callee's serializers (its committed OpenAPI
document, see `cleave_tools.checks.openapi`), so what is left to compare is
what the contract alone says:

- the operation's path and method are in its context's committed document;
- the view serving it names the operation (`operation = ...` or
  `operations = (...)`), so the permission it asks is the contract's, declared
  once; a public operation's view admits anyone (`AllowAny`);
- every caller is a context of this project;
- every notable problem's status is one the view documents.

Written by hand: drf-spectacular describes one server, and no library knows
this project's contracts.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.generators import EndpointEnumerator
from rest_framework.permissions import AllowAny

from cleave.auth.permissions import ServicePermission, view_operations
from cleave.core.declarations import ContextContract, Operation, openapi_document


def check_contracts(contracts: list[ContextContract]) -> list[str]:
    """Every disagreement between the contracts' operations and the views serving them."""
    problems: list[str] = []
    views = _views()
    for contract in contracts:
        for operation in contract.operations:
            problems.extend(check_operation(operation, views))
    return problems


def check_operation(operation: Operation, views: dict[tuple[str, str], Any]) -> list[str]:
    """What in the view serving `operation` disagrees with it (empty: they agree)."""
    where = f"{operation.qualname} ({operation.method} {operation.api_path})"
    document = openapi_document(operation.context)
    served = document.get("paths", {}).get(operation.api_path, {}).get(operation.method.lower())
    if served is None:
        return [
            f"{where}: not in contracts/openapi/{operation.context}.json (no view serves it, or "
            "the document is stale: `manage.py contracts openapi`)"
        ]
    problems: list[str] = []
    view = views.get((operation.api_path, operation.method))
    if view is None:
        problems.append("no view serves this path and method")
    else:
        problems.extend(_check_view(operation, view))
    for caller in operation.callers:
        if caller not in settings.CLEAVE_ALL_CONTEXTS:
            problems.append(f"its caller {caller!r} is not a context")
    documented = {int(code) for code in served.get("responses", {}) if code.isdigit()}
    for problem in operation.problems:
        if problem.status not in documented:
            problems.append(f"answers {problem.status} ({problem.code}), which the view never does")
    return [f"{where}: {problem}" for problem in problems]


def _views() -> dict[tuple[str, str], Any]:
    """The view instance serving each (path template, method) of the project."""
    found = {}
    for path, _regex, method, callback in EndpointEnumerator().get_api_endpoints():
        found[(path, method)] = callback.cls(**getattr(callback, "initkwargs", None) or {})
    return found


def _check_view(operation: Operation, view: Any) -> list[str]:
    classes = tuple(getattr(view, "permission_classes", ()))
    if any(_subclass(cls, ServicePermission) for cls in classes):
        named = view_operations(view)
        if operation not in named:
            return [
                f"its view ({type(view).__name__}) does not name it: set `operation = "
                f"{operation.context}.{operation.name.upper()}` (or list it in `operations`)"
            ]
        return []
    if operation.permission is None:
        if classes and all(_subclass(cls, AllowAny) for cls in classes):
            return []
        names = ", ".join(cls.__name__ for cls in classes) or "none"
        return [f"it is public, but its view asks {names}"]
    return [f"it needs {operation.permission}, but its view does not use ServicePermission"]


def _subclass(value: Any, base: type) -> bool:
    return isinstance(value, type) and issubclass(value, base)
