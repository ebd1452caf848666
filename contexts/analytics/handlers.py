"""
How the analytics context reacts to other contexts' events.

The bus applies each event once per handler (inbox), and every update is an
F() expression, so concurrent deliveries add up correctly.
"""

from __future__ import annotations

from cleave.messaging.envelope import Envelope
from cleave.messaging.subscriptions import subscriber
from contracts import orders, users

from . import commands
from .models import Counter


@subscriber(users.USER_CREATED)
def on_user_created(envelope: Envelope) -> None:
    commands.counter_add(name=Counter.USERS_REGISTERED)


@subscriber(users.USER_VERIFIED)
def on_user_verified(envelope: Envelope) -> None:
    commands.counter_add(name=Counter.USERS_VERIFIED)


@subscriber(users.USER_DELETED)
def on_user_deleted(envelope: Envelope) -> None:
    """Counted, nothing else: analytics keeps no one's personal data, only totals."""
    commands.counter_add(name=Counter.USERS_DELETED)


@subscriber(orders.ORDER_CONFIRMED)
def on_order_confirmed(envelope: Envelope) -> None:
    data = envelope.data
    commands.order_confirmed_record(
        lines=data.get("lines", []), total=data["total"], currency=data["currency"]
    )


@subscriber(orders.ORDER_CANCELLED)
def on_order_cancelled(envelope: Envelope) -> None:
    commands.counter_add(name=Counter.ORDERS_CANCELLED)
