"""
Whether a context may make a call, and what it is granted.

Who may call an operation is declared once, by the callee, in the operation
itself (`Operation.callers`). A calling context's grants (the permissions its
service tokens carry) follow from that: every permission of every operation
that lists it as a caller (`grants_of`). The client checks each call here
before anything is sent (`check_call`); the Istio policies and the context map
are generated from the same declarations.
"""

from __future__ import annotations

from functools import cache

from cleave.auth.tokens import ServicePrincipal
from cleave.core.declarations import (
    ContractViolation,
    Operation,
    all_contracts,
    contract_for,
    package,
)


def operations_called_by(caller: str) -> list[Operation]:
    """Every operation of every contract that admits `caller`."""
    return [
        operation
        for contract in all_contracts()
        for operation in contract.operations
        if caller in operation.callers
    ]


def grants_of(caller: str) -> list[str]:
    """The permissions `caller`'s service tokens carry: those of the operations it calls."""
    return list(_grants(caller))


@cache
def _grants(caller: str) -> tuple[str, ...]:
    permissions = {op.permission for op in operations_called_by(caller) if op.permission}
    return tuple(sorted(permissions))


def forget() -> None:
    """Derive the grants again (tests that swap contracts)."""
    _grants.cache_clear()


def is_granted(caller: str, operation: Operation) -> bool:
    """Whether `caller`'s grants hold `operation`'s permission (a public one needs none)."""
    if operation.permission is None:
        return True
    principal = ServicePrincipal(name=caller, permissions=frozenset(grants_of(caller)))
    return principal.has(operation.permission)


def check_call(operation: Operation, *, caller: str, target: str) -> None:
    """
    Refuse a call its contract does not allow: an operation `target` does not
    publish (or publishes differently), or one that does not list `caller`
    among its callers.
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
    if caller not in operation.callers:
        raise ContractViolation(
            f"{caller} calls {operation.qualname}, which does not admit it: add {caller!r} "
            f"to its callers in {package()}.{target}"
        )
