import uuid
from decimal import Decimal

import factory

from cleave.messaging.envelope import Envelope
from contexts.analytics.models import Counter, ProductSales
from tests.support.events import (  # noqa: F401 - re-exported for the tests
    EnvelopeFactory,
    order_cancelled,
    order_confirmed,
    order_line,
    user_created,
)
from tests.support.events import deliver as deliver_to


class ProductSalesFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductSales
        database = "analytics"

    product_id = factory.LazyFunction(uuid.uuid4)
    sku = factory.Sequence(lambda n: f"SKU-{n}")
    quantity = 1
    revenue = Decimal("10.00")


class CounterFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Counter
        database = "analytics"
        django_get_or_create = ("name",)

    name = Counter.USERS_REGISTERED
    value = Decimal(0)


def deliver(envelope: Envelope) -> str:
    """Run the analytics handler of this event once, through the bus (inbox included)."""
    return deliver_to(envelope, to="analytics")
