"""
The checkout saga, orchestrated by orders.

place_order → validate_user → reserve_inventory → process_payment → confirm_order.

Participants are called through the operations their contracts publish
(`contracts/<label>.py`; `ServiceClient.call` checks each call against them
before it leaves), each call with the step's idempotency key
(`saga:<id>:<step>`), so a retried or resumed step gets the first answer back
and never a second reservation or charge. When a reservation or a charge may
have happened without the saga hearing of it (a timeout, a crash), the step's
query finds it by that key; when the saga compensates, each compensation finds
what its action did by the same key, and does nothing if the action never
happened.

Compensations, in reverse: put committed stock back (a refund of a confirmed
order), void the payment (refund it if captured, settle it with the provider
if pending), release the reservation, cancel the order with the reason.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from django.conf import settings

from cleave.calls.client import ServiceClient, ServiceResponse
from cleave.core.declarations import Operation
from cleave.sagas import OutcomeUnknown, SagaContext, SagaDefinition, Step, StepFailed, register
from contracts import inventory, payments, users
from contracts.orders import CancellationReason

from . import commands
from .models import Order

CALLER = "orders"

# How long one participant call may take before its outcome counts as unknown;
# above the service client's own budget (CLEAVE_SERVICE_TIMEOUT), which ends first.
# A participant that is unavailable (refused, timed out, 5xx, circuit open) is
# not a refusal: the engine waits and calls again until the checkout's deadline
# (CLEAVE_CHECKOUT_DEADLINE), then cancels the order as `service_unavailable`.
CALL_TIMEOUT = 10.0
PAYMENT_TIMEOUT = 30.0  # a card network may be slow


def _call(operation: Operation, **kwargs) -> ServiceResponse:
    """Make one operation of a participant's contract, as orders."""
    return ServiceClient(operation.context, caller=CALLER).call(operation, **kwargs)


def _found(response: ServiceResponse) -> dict | None:
    """The looked-up resource, or None when there is none (404)."""
    if response.status_code == 404:
        return None
    return response.raise_for_status().json()


# --- place_order ---------------------------------------------------------------------


def place_order(saga: SagaContext) -> dict:
    """Done by the checkout transaction itself (`completed_steps=1`); kept as a guard."""
    order = Order.objects.get(pk=saga.data["order_id"])
    if order.status != Order.Status.PENDING:
        raise StepFailed(CancellationReason.CUSTOMER_REQUEST, f"order is already {order.status}")
    return {}


def cancel_order(saga: SagaContext) -> dict:
    payment_id = saga.data.get("payment_id")
    reservation_id = saga.data.get("reservation_id")
    commands.order_cancel(
        order_id=UUID(saga.data["order_id"]),
        reason=saga.failure_reason or CancellationReason.PAYMENT_ERROR,
        payment_id=UUID(payment_id) if payment_id else None,
        reservation_id=UUID(reservation_id) if reservation_id else None,
        # compensating a confirmed order: its payment was refunded and its
        # stock returned by the compensations that ran before this one
        after_refund=True,
    )
    return {}


# --- validate_user -------------------------------------------------------------------


def validate_user(saga: SagaContext) -> dict:
    response = _call(users.CUSTOMER_GET, customer_id=saga.data["customer_id"])
    if response.status_code == 404:
        raise StepFailed(CancellationReason.USER_INVALID, "unknown customer")
    response.raise_for_status()
    status = response.json().get("status")
    if status == users.CustomerStatus.BLOCKED:
        raise StepFailed(CancellationReason.CUSTOMER_BLOCKED, "the customer is blocked")
    if status != users.CustomerStatus.ACTIVE:
        raise StepFailed(CancellationReason.USER_INVALID, f"customer is {status}")
    return {}


# --- reserve_inventory ------------------------------------------------------------------


def reserve_inventory(saga: SagaContext) -> dict:
    response = _call(
        inventory.RESERVATION_CREATE,
        json={"order_id": saga.data["order_id"], "lines": saga.data["lines"]},
        idempotency_key=saga.key,
    )
    if response.status_code == 409:
        detail = str((response.json() or {}).get("detail", ""))
        raise StepFailed(CancellationReason.OUT_OF_STOCK, detail)
    response.raise_for_status()
    return {"reservation_id": response.json()["id"]}


def _reservation_by_key(saga: SagaContext) -> dict | None:
    return _found(
        _call(
            inventory.RESERVATION_FIND_BY_KEY,
            params={"idempotency_key": saga.idempotency_key("reserve_inventory")},
        )
    )


def find_reservation(saga: SagaContext) -> dict | None:
    """Did the reservation happen? Asked by key when the action's answer was lost."""
    reservation = _reservation_by_key(saga)
    if reservation is None:
        return None
    status = reservation["status"]
    if status in (inventory.ReservationStatus.RELEASED, inventory.ReservationStatus.RETURNED):
        raise StepFailed(CancellationReason.TIMEOUT, f"the reservation was {status} meanwhile")
    return {"reservation_id": reservation["id"]}


def release_inventory(saga: SagaContext) -> dict:
    reservation_id = saga.data.get("reservation_id")
    if not reservation_id:  # the answer was lost: find the reservation by the action's key
        found = _reservation_by_key(saga)
        if found is None:
            return {}  # nothing was reserved (a late one expires on its own)
        reservation_id = found["id"]
    _call(
        inventory.RESERVATION_RELEASE,
        reservation_id=reservation_id,
        json={"reason": saga.failure_reason or "cancelled"},
        idempotency_key=saga.key,
    ).raise_for_status()
    return {"reservation_id": reservation_id}


# --- process_payment ------------------------------------------------------------------

# why a payment failed, and so why its order is cancelled
_PAYMENT_FAILURES = {
    payments.FailureReason.DECLINED: CancellationReason.PAYMENT_DECLINED,
    payments.FailureReason.INVALID_METHOD: CancellationReason.PAYMENT_DECLINED,
    payments.FailureReason.TIMEOUT: CancellationReason.TIMEOUT,
    payments.FailureReason.ERROR: CancellationReason.PAYMENT_ERROR,
}


def _payment_outcome(payment: dict) -> dict:
    """Map a payment to the step's result, or raise what it means for the saga."""
    if payment["status"] == payments.PaymentStatus.CAPTURED:
        return {"payment_id": payment["id"]}
    if payment["status"] == payments.PaymentStatus.PENDING:
        raise OutcomeUnknown(
            CancellationReason.TIMEOUT,
            "the payment provider did not answer in time",
            data={"payment_id": payment["id"]},
        )
    declined = payment["status"] == payments.PaymentStatus.DECLINED
    fallback = CancellationReason.PAYMENT_DECLINED if declined else CancellationReason.PAYMENT_ERROR
    reason = _PAYMENT_FAILURES.get(payment.get("failure_reason") or "", fallback)
    raise StepFailed(reason, f"payment {payment['status']}", data={"payment_id": payment["id"]})


def process_payment(saga: SagaContext) -> dict:
    response = _call(
        payments.CHARGE_CREATE,
        json={
            "order_id": saga.data["order_id"],
            "customer_id": saga.data["customer_id"],
            "amount": saga.data["amount"],
            "currency": saga.data["currency"],
            "payment_method": saga.data["payment_method"],
        },
        idempotency_key=saga.key,
    )
    return _payment_outcome(response.raise_for_status().json())


def find_payment(saga: SagaContext) -> dict | None:
    """Was the order charged? Asked by key when the charge's answer was lost."""
    payment = _found(
        _call(
            payments.CHARGE_FIND_BY_KEY,
            params={"idempotency_key": saga.idempotency_key("process_payment")},
        )
    )
    return None if payment is None else _payment_outcome(payment)


def void_payment(saga: SagaContext) -> dict:
    """Refund the charge if captured, settle it if pending, fence its key if it never came."""
    response = _call(
        payments.CHARGE_VOID,
        json={
            "idempotency_key": saga.idempotency_key("process_payment"),
            "order_id": saga.data["order_id"],
            "customer_id": saga.data["customer_id"],
            "amount": saga.data["amount"],
            "currency": saga.data["currency"],
            "payment_method": saga.data["payment_method"],
        },
    )
    payment = response.raise_for_status().json()
    if payment["failure_reason"] == payments.FailureReason.VOIDED:
        return {}  # no charge was ever made: nothing to show on the order
    return {"payment_id": payment["id"]}


# --- confirm_order --------------------------------------------------------------------


def confirm_order(saga: SagaContext) -> dict:
    reservation_id = saga.data["reservation_id"]
    response = _call(
        inventory.RESERVATION_COMMIT, reservation_id=reservation_id, idempotency_key=saga.key
    )
    if response.status_code == 409:
        raise StepFailed(
            CancellationReason.TIMEOUT, "the reservation expired before the order was confirmed"
        )
    response.raise_for_status()

    order_id = UUID(saga.data["order_id"])
    # read before the step's commit opens: it never changes once the order is placed
    placed = commands.order_placed(order_id=order_id)

    def confirm() -> None:
        commands.order_confirm(
            order_id=order_id,
            payment_id=UUID(saga.data["payment_id"]),
            reservation_id=UUID(reservation_id),
            placed=placed,
        )

    # the order's confirmation and the saga's completion commit together
    saga.with_step_commit(confirm)
    return {"confirmed": True}


def return_inventory(saga: SagaContext) -> dict:
    """Put committed stock back on the shelf; a reservation never committed is left as it is."""
    reservation_id = saga.data.get("reservation_id")
    if reservation_id:
        _call(
            inventory.RESERVATION_RETURN,
            reservation_id=reservation_id,
            json={"reason": saga.failure_reason or "returned"},
            idempotency_key=saga.key,
        ).raise_for_status()
    return {}


def checkout_failed(saga: SagaContext) -> None:
    """
    A checkout whose compensation failed for good (a bug; an operator must act,
    `sagas retry`) still ends its order: the customer sees it cancelled, never
    pending forever. Run in the transaction that ends the saga.
    """
    commands.order_cancel(
        order_id=UUID(saga.data["order_id"]),
        reason=saga.failure_reason or CancellationReason.PAYMENT_ERROR,
        after_refund=True,
    )


CHECKOUT = register(
    SagaDefinition(
        name=commands.CHECKOUT_SAGA,
        context="orders",
        # the order is what a checkout is about: the admin links the saga to it
        subject_key="order_id",
        subject_model="orders.order",
        records=Order.REFERENCES,  # its data holds the same ids as the order
        deadline=timedelta(seconds=settings.CLEAVE_CHECKOUT_DEADLINE),
        deadline_reason=CancellationReason.TIMEOUT,
        unavailable_reason=CancellationReason.SERVICE_UNAVAILABLE,
        on_failed=checkout_failed,
        error_reason=CancellationReason.PAYMENT_ERROR,
        cancel_reason=CancellationReason.CUSTOMER_REQUEST,
        steps=(
            Step("place_order", place_order, compensation=cancel_order),
            Step(
                "validate_user",
                validate_user,
                timeout=CALL_TIMEOUT,
                error_reason=CancellationReason.USER_INVALID,
            ),
            Step(
                "reserve_inventory",
                reserve_inventory,
                compensation=release_inventory,
                query=find_reservation,
                timeout=CALL_TIMEOUT,
            ),
            Step(
                "process_payment",
                process_payment,
                compensation=void_payment,
                query=find_payment,
                timeout=PAYMENT_TIMEOUT,
                error_reason=CancellationReason.PAYMENT_ERROR,
            ),
            Step(
                "confirm_order",
                confirm_order,
                compensation=return_inventory,
                timeout=CALL_TIMEOUT,
            ),
        ),
    )
)
