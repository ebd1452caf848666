"""Events the inventory context publishes."""

from cleave.events import EventType
from cleave.events.registry import DATETIME, POSITIVE_INT, STRING, UUID, obj

LINES = {
    "type": "array",
    "minItems": 1,
    "items": obj({"sku": STRING, "quantity": POSITIVE_INT}),
}

INVENTORY_RESERVED = EventType(
    "inventory.reserved",
    version=1,
    description="Stock was held for an order.",
    schema=obj({"reservation_id": UUID, "order_id": UUID, "lines": LINES, "expires_at": DATETIME}),
)

INVENTORY_COMMITTED = EventType(
    "inventory.committed",
    version=1,
    description="A held reservation was committed: the stock left the shelf.",
    schema=obj({"reservation_id": UUID, "order_id": UUID, "lines": LINES}),
)

INVENTORY_RELEASED = EventType(
    "inventory.released",
    version=1,
    description="A held reservation was released: its stock is available again.",
    schema=obj({"reservation_id": UUID, "order_id": UUID, "lines": LINES, "reason": STRING}),
)

INVENTORY_RETURNED = EventType(
    "inventory.returned",
    version=1,
    description="Committed stock was put back on the shelf (a refunded order): on hand rises.",
    schema=obj({"reservation_id": UUID, "order_id": UUID, "lines": LINES, "reason": STRING}),
)
