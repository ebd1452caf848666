"""
Where contracts are found, and whether a caller may make a call.

Each context's contract is the `ContextContract` in `<package>.<label>`, the
package being `settings.CLEAVE_CONTRACTS_PACKAGE` (config/settings.py): a
shared kernel every context may import, which imports nothing but `cleave`. It
is loaded on first need, for local and remote contexts alike, so a process
serving orders alone still knows what inventory publishes.
"""

from __future__ import annotations

import threading
from importlib import import_module

from django.conf import settings

from cleave.security import ServicePrincipal

from .declarations import ContextContract, ContractViolation, Operation

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


def grants_of(caller: str) -> list[str]:
    return list(settings.CLEAVE_SERVICE_GRANTS.get(caller, []))


def is_granted(caller: str, operation: Operation) -> bool:
    """Whether `caller`'s grants (CLEAVE_SERVICE_GRANTS) hold `operation`'s permission."""
    if operation.permission is None:
        return True
    principal = ServicePrincipal(name=caller, permissions=frozenset(grants_of(caller)))
    return principal.has(operation.permission)


def check_call(operation: Operation, *, caller: str, target: str) -> None:
    """
    Refuse a call its contracts do not allow: an operation `target` does not
    publish (or publishes differently), one `caller`'s contract does not list in
    its `calls`, or one whose permission `caller` is not granted.
    """
    if not isinstance(operation, Operation):
        raise ContractViolation(
            f"call() takes an Operation from {target}'s contract, not {type(operation).__name__}"
        )
    if operation.context != target:
        raise ContractViolation(
            f"{operation.qualname} is {operation.context}'s operation; this client calls {target}"
        )
    try:
        published = contract_for(target).operation(operation.name)
    except LookupError as exc:
        raise ContractViolation(str(exc)) from None
    if published is not operation and published != operation:
        raise ContractViolation(
            f"{operation.qualname} is not the operation {target} publishes "
            f"(see {package()}.{target}): call the declared one"
        )
    try:
        calling = contract_for(caller)
    except LookupError as exc:
        raise ContractViolation(str(exc)) from None
    if not calling.calls_operation(operation):
        raise ContractViolation(
            f"{caller} calls {operation.qualname}, which its contract does not list: "
            f"add it to `calls` in {package()}.{caller}"
        )
    if not is_granted(caller, operation):
        raise ContractViolation(
            f"{caller} is not granted {operation.permission}, which {operation.qualname} "
            f"needs: CLEAVE_SERVICE_GRANTS[{caller!r}] is {grants_of(caller)}"
        )
