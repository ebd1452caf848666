"""Events the catalog context publishes."""

from cleave.events import EventType
from cleave.events.registry import CURRENCY, MONEY, STRING, UUID, obj

PRODUCT_CREATED = EventType(
    "product.created",
    version=1,
    description="A product was added to the catalog.",
    schema=obj(
        {
            "product_id": UUID,
            "sku": STRING,
            "name": STRING,
            "price": MONEY,
            "currency": CURRENCY,
            "category": STRING,
        }
    ),
)
