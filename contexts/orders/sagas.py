"""
The checkout saga, orchestrated by orders.

place_order → validate_user → reserve_inventory → process_payment → confirm_order.
Participants are called through their published APIs with an idempotency key
per step; on failure the completed steps are compensated in reverse: refund the
payment, release the reservation, cancel the order with the failure's reason.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from cleave.client import ServiceClient
from cleave.sagas import SagaContext, SagaDefinition, Step, StepFailed, register

from . import commands
from .models import Order

CALLER = "orders"


def _client(service: str) -> ServiceClient:
    return ServiceClient(service, caller=CALLER)


def place_order(saga: SagaContext) -> dict:
    order = Order.objects.using(commands.ALIAS).get(pk=saga.data["order_id"])
    if order.status != Order.Status.PENDING:
        raise StepFailed("customer_request", f"order is already {order.status}")
    return {}


def cancel_order(saga: SagaContext) -> dict:
    payment_id = saga.data.get("payment_id")
    reservation_id = saga.data.get("reservation_id")
    commands.order_cancel(
        order_id=UUID(saga.data["order_id"]),
        reason=saga.failure_reason or Order.CancellationReason.PAYMENT_ERROR,
        payment_id=UUID(payment_id) if payment_id else None,
        reservation_id=UUID(reservation_id) if reservation_id else None,
    )
    return {}


def validate_user(saga: SagaContext) -> dict:
    response = _client("users").get(f"/customers/{saga.data['customer_id']}")
    if response.status_code == 404:
        raise StepFailed("user_invalid", "unknown customer")
    response.raise_for_status()
    if response.json().get("status") != "active":
        raise StepFailed("user_invalid", "customer is not active")
    return {}


def reserve_inventory(saga: SagaContext) -> dict:
    response = _client("inventory").post(
        "/reservations",
        json={"order_id": saga.data["order_id"], "lines": saga.data["lines"]},
        idempotency_key=saga.idempotency_key("reserve_inventory"),
    )
    if response.status_code == 409:
        raise StepFailed("out_of_stock", str((response.json() or {}).get("detail", "")))
    response.raise_for_status()
    return {"reservation_id": response.json()["id"]}


def release_inventory(saga: SagaContext) -> dict:
    reservation_id = saga.data.get("reservation_id")
    if reservation_id:
        _client("inventory").post(
            f"/reservations/{reservation_id}/release",
            json={"reason": saga.failure_reason or "cancelled"},
            idempotency_key=saga.idempotency_key("release_inventory"),
        ).raise_for_status()
    return {}


_PAYMENT_FAILURES = {
    "declined": "payment_declined",
    "invalid_method": "payment_declined",
    "timeout": "timeout",
    "error": "payment_error",
}


def process_payment(saga: SagaContext) -> dict:
    response = _client("payments").post(
        "/charges",
        json={
            "order_id": saga.data["order_id"],
            "customer_id": saga.data["customer_id"],
            "amount": saga.data["amount"],
            "currency": saga.data["currency"],
            "payment_method": saga.data["payment_method"],
        },
        idempotency_key=saga.idempotency_key("process_payment"),
    )
    response.raise_for_status()
    payment = response.json()
    if payment["status"] == "captured":
        return {"payment_id": payment["id"]}
    reason = _PAYMENT_FAILURES.get(payment.get("failure_reason") or "", "payment_error")
    if payment["status"] == "declined":
        reason = _PAYMENT_FAILURES.get(payment.get("failure_reason") or "", "payment_declined")
    raise StepFailed(reason, f"payment {payment['status']}", data={"payment_id": payment["id"]})


def refund_payment(saga: SagaContext) -> dict:
    payment_id = saga.data.get("payment_id")
    if payment_id:
        _client("payments").post(
            f"/{payment_id}/refund", idempotency_key=saga.idempotency_key("refund_payment")
        ).raise_for_status()
    return {}


def confirm_order(saga: SagaContext) -> dict:
    reservation_id = saga.data["reservation_id"]
    response = _client("inventory").post(
        f"/reservations/{reservation_id}/commit",
        idempotency_key=saga.idempotency_key("commit_inventory"),
    )
    if response.status_code == 409:
        raise StepFailed("timeout", "the reservation expired before the order was confirmed")
    response.raise_for_status()
    commands.order_confirm(
        order_id=UUID(saga.data["order_id"]),
        payment_id=UUID(saga.data["payment_id"]),
        reservation_id=UUID(reservation_id),
    )
    return {}


CHECKOUT = register(
    SagaDefinition(
        name=commands.CHECKOUT_SAGA,
        context="orders",
        deadline=timedelta(minutes=5),
        error_reason="payment_error",
        steps=(
            Step("place_order", place_order, compensation=cancel_order),
            Step("validate_user", validate_user, error_reason="user_invalid"),
            Step("reserve_inventory", reserve_inventory, compensation=release_inventory),
            Step("process_payment", process_payment, compensation=refund_payment),
            Step("confirm_order", confirm_order),
        ),
    )
)
