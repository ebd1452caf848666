"""
How the notifications context reacts to other contexts' events.

Each handler turns one event into at most one notification of a kind; sending
happens after the bus commits the handler's transaction.
"""

from __future__ import annotations

from uuid import UUID

from cleave.auth import revocations
from cleave.messaging.envelope import Envelope
from cleave.messaging.replay import redact
from cleave.messaging.subscriptions import subscriber
from contracts import orders, users
from contracts.users import erased_fields

from . import commands, queries
from .apps import ALIAS
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
    "customer_blocked": "your account is blocked",
    "customer_deleted": "your account was deleted",
}


def short_id(value: str | UUID) -> str:
    """The first block of a UUID: enough for a person to recognise an order."""
    return str(value).split("-")[0]


def cancellation_reason_text(reason: str) -> str:
    return CANCELLATION_REASONS.get(reason, (reason or "of a problem").replace("_", " "))


def _greeting(recipient: Recipient | None) -> str:
    return f"Hello {recipient.name}," if recipient is not None and recipient.name else "Hello,"


@subscriber(users.USER_CREATED)
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


@subscriber(users.USER_VERIFICATION_REQUESTED)
def on_user_verification_requested(envelope: Envelope) -> None:
    """Mail the token to the address it verifies (not sent once verified or changed again)."""
    data = envelope.data
    commands.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=Notification.Kind.VERIFY_EMAIL,
        address=data["email"],
        subject=f"Confirm your email address for {SHOP_NAME}",
        body=(
            f"Hello {data['name']},\n\n"
            f"please confirm that {data['email']} is your address: post this token to "
            '/api/users/verify as {"token": "..."}\n\n'
            f"{data['token']}\n\n"
            f"It is valid until {data['expires_at']}. If you did not ask for it, ignore this "
            "message.\n\n"
            f"The {SHOP_NAME} team\n"
        ),
    )


@subscriber(users.USER_UPDATED)
def on_user_updated(envelope: Envelope) -> None:
    """Keep the recipient's name and address current (a new address is unverified)."""
    data = envelope.data
    commands.recipient_upsert(
        customer_id=data["customer_id"],
        email=data["email"],
        name=data["name"],
        verified=data["email_verified"],
    )


@subscriber(users.USER_VERIFIED)
def on_user_verified(envelope: Envelope) -> None:
    data = envelope.data
    commands.recipient_verified(customer_id=data["customer_id"], email=data["email"])


@subscriber(users.USER_EMAIL_CHANGED)
def on_user_email_changed(envelope: Envelope) -> None:
    """
    Tell the address a customer left: if someone else changed it (with a
    stolen session and password), this is how the owner learns of it.
    """
    data = envelope.data
    commands.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=Notification.Kind.EMAIL_CHANGED,
        address=data["previous_email"],
        subject=f"Your {SHOP_NAME} email address was changed",
        body=(
            f"Hello {data['name']},\n\n"
            f"the email address of your {SHOP_NAME} account was changed from "
            f"{data['previous_email']} to {data['email']}. Until the new address is "
            f"confirmed, nobody else can register {data['previous_email']}.\n\n"
            "If you did not change it, someone else knows your password: write to us at "
            "once, and we will block the account.\n\n"
            f"The {SHOP_NAME} team\n"
        ),
    )


@subscriber(users.USER_PASSWORD_CHANGED)
def on_user_password_changed(envelope: Envelope) -> None:
    """The customer's tokens issued before the change stop working here."""
    revocations.revoke_for(envelope, alias=ALIAS, at_key="changed_at")


@subscriber(users.USER_BLOCKED)
def on_user_blocked(envelope: Envelope) -> None:
    """A blocked customer's tokens stop working here (they may still get order mail)."""
    revocations.revoke_for(envelope, alias=ALIAS)


@subscriber(users.USER_DELETED)
def on_user_deleted(envelope: Envelope) -> None:
    """
    Forget the customer: the recipient erased, their notifications emptied
    and never sent, their tokens refused, and the copies of users' events
    kept here (deliveries, dead letters) redacted.
    """
    customer_id = envelope.data["customer_id"]
    revocations.revoke_for(envelope, alias=ALIAS)
    commands.recipient_erase(customer_id=customer_id)
    redact(
        ALIAS,
        type_prefix="user.",
        match={"customer_id": str(customer_id)},
        replace=erased_fields(customer_id),
    )


@subscriber(orders.ORDER_CONFIRMED)
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


@subscriber(orders.ORDER_CANCELLED)
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
