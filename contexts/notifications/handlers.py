"""
How the notifications context reacts to other contexts' events.

Each handler turns one event into at most one notification of a kind; sending
happens after the bus commits the handler's transaction.
"""

from __future__ import annotations

from uuid import UUID

from cleave.events import Envelope, subscriber

from . import commands, queries
from .models import Notification, Recipient

SHOP_NAME = "Cleave"

CANCELLATION_REASONS = {
    "payment_declined": "your payment was declined",
    "payment_error": "the payment provider could not process your payment",
    "timeout": "the payment did not go through in time",
    "out_of_stock": "an item in your order is out of stock",
    "user_invalid": "we could not verify your account",
    "customer_request": "you asked us to cancel it",
    "service_unavailable": "part of our shop was unavailable for too long to complete it",
}


def short_id(value: str | UUID) -> str:
    """The first block of a UUID: enough for a person to recognise an order."""
    return str(value).split("-")[0]


def cancellation_reason_text(reason: str) -> str:
    return CANCELLATION_REASONS.get(reason, (reason or "of a problem").replace("_", " "))


def _greeting(recipient: Recipient | None) -> str:
    return f"Hello {recipient.name}," if recipient is not None and recipient.name else "Hello,"


@subscriber("user.created")
def on_user_created(envelope: Envelope) -> None:
    """Remember the new customer's address and welcome them."""
    data = envelope.data
    commands.recipient_upsert(
        customer_id=data["customer_id"], email=data["email"], name=data["name"]
    )
    commands.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=Notification.Kind.WELCOME,
        subject=f"Welcome to {SHOP_NAME}, {data['name']}",
        body=(
            f"Hello {data['name']},\n\n"
            f"welcome to {SHOP_NAME}! Your account for {data['email']} is ready.\n\n"
            f"The {SHOP_NAME} team\n"
        ),
    )


@subscriber("order.confirmed")
def on_order_confirmed(envelope: Envelope) -> None:
    """Tell the customer their order is confirmed, with its lines and total."""
    data = envelope.data
    currency = data.get("currency", "")
    lines = "\n".join(
        f"  {line['quantity']} x {line['name']} ({line['sku']}): {line['line_total']} {currency}"
        for line in data.get("lines", [])
    )
    order = short_id(data["order_id"])
    recipient = queries.recipient_get(customer_id=data["customer_id"])
    commands.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=Notification.Kind.ORDER_CONFIRMED,
        recipient=recipient,
        subject=f"Your order {order} is confirmed",
        body=(
            f"{_greeting(recipient)}\n\n"
            f"thank you for your order {order}. We have received your payment "
            "and are preparing it:\n\n"
            f"{lines}\n\n"
            f"Total: {data['total']} {currency}\n\n"
            f"The {SHOP_NAME} team\n"
        ),
    )


@subscriber("order.cancelled")
def on_order_cancelled(envelope: Envelope) -> None:
    """Tell the customer their order was cancelled, and why."""
    data = envelope.data
    order = short_id(data["order_id"])
    recipient = queries.recipient_get(customer_id=data["customer_id"])
    commands.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=Notification.Kind.ORDER_CANCELLED,
        recipient=recipient,
        subject=f"Your order {order} was cancelled",
        body=(
            f"{_greeting(recipient)}\n\n"
            f"we cancelled your order {order} because "
            f"{cancellation_reason_text(data.get('reason', ''))}.\n"
            "If a payment was taken for it, it is refunded.\n\n"
            f"The {SHOP_NAME} team\n"
        ),
    )
