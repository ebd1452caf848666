"""The orders context's reactions to other contexts' events."""

from uuid import UUID

from cleave.events import Envelope, subscriber

from . import commands


@subscriber("user.created")
def on_user_created(event: Envelope) -> None:
    """Every new customer gets an empty cart."""
    commands.cart_ensure(customer_id=UUID(event.data["customer_id"]))
