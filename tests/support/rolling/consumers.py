"""
The consumers of `order.placed` in each release, homed in analytics and
notifications (as a context's `handlers.py` declares them), and release 2's
orders code publishing v2's shape.

Both releases name their handlers alike, so the inbox applies an event once
whichever release's handler meets it. Each handler records what it read:
analytics counts the orders and adds their totals (`rolling:*` counters);
notifications writes one `order_received` notification per order, its
subject naming the total.
"""

from __future__ import annotations

from decimal import Decimal

from cleave.core.declarations import contract_for
from cleave.messaging.envelope import Envelope
from cleave.messaging.subscriptions import subscriber

KIND = "order_received"


def placed_v1_to_v2(data: dict) -> dict:
    """v1's `total` and `currency` as v2's `amount`."""
    rest = {key: value for key, value in data.items() if key not in ("total", "currency")}
    return {**rest, "amount": {"value": data["total"], "currency": data["currency"]}}


def _record(envelope: Envelope, total: str, currency: str, read: int) -> None:
    from contexts.analytics import commands as analytics

    analytics.counter_add(name="rolling:placed")
    analytics.counter_add(name="rolling:total", amount=Decimal(total))
    analytics.counter_add(name=f"rolling:read-v{read}")


def _notify(envelope: Envelope, total: str, currency: str) -> None:
    from contexts.notifications import commands as notifications

    data = envelope.data
    notifications.notification_create(
        event_id=envelope.id,
        customer_id=data["customer_id"],
        kind=KIND,
        subject=f"We received your order {data['order_id']}: {total} {currency}",
        body="",
    )


def install(release: int) -> None:
    """Register this release's handlers of `order.placed`."""
    placed = next(e for e in contract_for("orders").events if e.name == "order.placed")

    if release == 1:

        def counted(envelope: Envelope) -> None:
            _record(envelope, envelope.data["total"], envelope.data["currency"], read=1)

        def notified(envelope: Envelope) -> None:
            _notify(envelope, envelope.data["total"], envelope.data["currency"])

        declared = subscriber(placed, version=1)
    else:

        def counted(envelope: Envelope) -> None:
            amount = envelope.data["amount"]
            _record(envelope, amount["value"], amount["currency"], read=2)

        def notified(envelope: Envelope) -> None:
            amount = envelope.data["amount"]
            _notify(envelope, amount["value"], amount["currency"])

        declared = subscriber(placed, version=2, upcasters={1: placed_v1_to_v2})
    for func, label in ((counted, "analytics"), (notified, "notifications")):
        func.__module__ = f"contexts.{label}.handlers"
        func.__qualname__ = func.__name__ = "on_order_placed_rolling"
        declared(func)


def publish_v2_shape() -> None:
    """Release 2's orders code: `order.placed` as v2 (`amount`), the rest as before."""
    from contexts.orders import commands

    original = commands.publish

    def publish(event, data, **kwargs):
        if getattr(event, "name", event) == "order.placed" and "total" in data:
            data = placed_v1_to_v2(data)
        return original(event, data, **kwargs)

    commands.publish = publish
