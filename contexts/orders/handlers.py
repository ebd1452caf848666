"""The orders context's reactions to other contexts' events."""

from uuid import UUID

from cleave.auth import revocations
from cleave.messaging.envelope import Envelope
from cleave.messaging.subscriptions import subscriber
from contracts import users

from . import commands
from .apps import ALIAS
from .models import Order


@subscriber(users.USER_CREATED)
def on_user_created(event: Envelope) -> None:
    """Every new customer gets an empty cart."""
    commands.cart_ensure(customer_id=UUID(event.data["customer_id"]))


@subscriber(users.USER_BLOCKED)
def on_user_blocked(event: Envelope) -> None:
    """A blocked customer's tokens stop working here, and their running checkouts end."""
    customer_id = UUID(event.data["customer_id"])
    revocations.revoke_for(event, alias=ALIAS)
    commands.customer_checkouts_cancel(
        customer_id=customer_id, reason=Order.CancellationReason.CUSTOMER_BLOCKED
    )


@subscriber(users.USER_PASSWORD_CHANGED)
def on_user_password_changed(event: Envelope) -> None:
    """The customer's tokens issued before the change stop working here."""
    revocations.revoke_for(event, alias=ALIAS, at_key="changed_at")


@subscriber(users.USER_DELETED)
def on_user_deleted(event: Envelope) -> None:
    """
    A deleted customer: tokens refused, running checkouts cancelled, then the
    cart dropped and the orders kept under a pseudonym (`customer_forget`).
    """
    customer_id = UUID(event.data["customer_id"])
    revocations.revoke_for(event, alias=ALIAS)
    commands.customer_checkouts_cancel(
        customer_id=customer_id, reason=Order.CancellationReason.CUSTOMER_DELETED
    )
    commands.customer_forget(customer_id=customer_id)
