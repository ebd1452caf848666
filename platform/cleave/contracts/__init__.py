"""
Contracts between contexts: what each one publishes, in one place.

A context's contract (`ContextContract`) names the event types it publishes
and the service operations other contexts may call (`Operation`: method, path
template, permission, request, query and answer JSON Schemas, notable
problems), and lists the operations of other contexts it calls itself. The
declarations live in a shared-kernel package (`contracts/<label>.py`, see its
docstring) that every context imports and that imports only `cleave`, so a
caller names an operation without importing its callee:

    from contracts import inventory

    ServiceClient("inventory", caller="orders").call(
        inventory.RESERVATION_RELEASE, reservation_id=rid, json={"reason": "timeout"}
    )

The client checks the call against both contracts before sending it
(`registry.check_call`, `Operation.request_body`); `conformance` checks each
callee's views against its operations, `compat` each event type's schema
against the committed lock, and `contextmap` renders docs/context-map.md.
"""

from .declarations import ContextContract, ContractViolation, Operation, Problem, answer
from .registry import all_contracts, check_call, contract_for, is_granted

__all__ = [
    "ContextContract",
    "ContractViolation",
    "Operation",
    "Problem",
    "all_contracts",
    "answer",
    "check_call",
    "contract_for",
    "is_granted",
]
