"""
Whether a caller may make a call: the operation is the callee's own, the
caller's contract lists it, and the caller's grants hold its permission.
"""

from __future__ import annotations

from django.conf import settings

from cleave.auth.tokens import ServicePrincipal
from cleave.core.declarations import (
    ContractViolation,
    Operation,
    contract_for,
    package,
)


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
