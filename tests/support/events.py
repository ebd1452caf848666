"""
Events as other contexts publish them (docs/context-map.md), for handler tests
that must not depend on the publishing context's code.
"""

import uuid
from decimal import Decimal

import factory
from django.utils import timezone

from cleave.messaging import inbox, subscriptions
from cleave.messaging.envelope import Envelope


class EnvelopeFactory(factory.Factory):
    """An event as another context publishes it (see docs/context-map.md)."""

    class Meta:
        model = Envelope

    id = factory.LazyFunction(lambda: str(uuid.uuid4()))
    type = "order.confirmed"
    version = 1
    source = "orders"
    timestamp = factory.LazyFunction(lambda: timezone.now().isoformat())
    data = factory.Dict({})


def order_line(*, sku="TEE-1", name="Tee", unit_price="19.90", quantity=2, product_id=None):
    return {
        "product_id": str(product_id or uuid.uuid4()),
        "sku": sku,
        "name": name,
        "unit_price": unit_price,
        "quantity": quantity,
        "line_total": str(Decimal(unit_price) * quantity),
    }


def order_confirmed(customer_id, *, lines=None, currency="EUR") -> Envelope:
    lines = lines or [order_line()]
    return EnvelopeFactory(
        type="order.confirmed",
        data={
            "order_id": str(uuid.uuid4()),
            "customer_id": str(customer_id),
            "lines": lines,
            "total": str(sum(Decimal(line["line_total"]) for line in lines)),
            "currency": currency,
            "payment_id": str(uuid.uuid4()),
        },
    )


def order_cancelled(customer_id, *, reason="payment_declined") -> Envelope:
    return EnvelopeFactory(
        type="order.cancelled",
        data={
            "order_id": str(uuid.uuid4()),
            "customer_id": str(customer_id),
            "reason": reason,
            "total": "39.80",
            "currency": "EUR",
        },
    )


def user_created(customer_id=None, *, email="ada@example.com", name="Ada") -> Envelope:
    return EnvelopeFactory(
        type="user.created",
        source="users",
        data={
            "customer_id": str(customer_id or uuid.uuid4()),
            "email": email,
            "name": name,
            "created_at": timezone.now().isoformat(),
        },
    )


def deliver(envelope: Envelope, *, to: str) -> str:
    """Run context `to`'s handler of this event once, through the bus (inbox included)."""
    [subscription] = subscriptions.subscriptions_for(envelope.type, subscriber_context=to)
    return inbox.apply(subscription, envelope)
