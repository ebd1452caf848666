"""The inventory context's contract: stock events, and reservations for the checkout."""

from django.db.models import TextChoices

from cleave.core.declarations import ContextContract, EventType, Operation, Problem

from ._schemas import DATETIME, POSITIVE_INT, STRING, UUID, obj

CONTEXT = "inventory"


class ReservationStatus(TextChoices):
    """Where a reservation is: its `status`, as the reservation operations answer it."""

    HELD = "held", "held"
    COMMITTED = "committed", "committed"
    RELEASED = "released", "released"
    # committed stock put back on the shelf (an order refunded before it left)
    RETURNED = "returned", "returned"


# --- events ------------------------------------------------------------------------------

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

# --- operations --------------------------------------------------------------------------


RESERVATION_CREATE = Operation(
    CONTEXT,
    "reservation_create",
    "POST",
    "/reservations",
    permission="inventory:write",
    callers=("orders",),
    problems=(
        Problem(409, "out-of-stock", "a SKU is short; `errors.lines` names the short SKUs"),
        Problem(409, "idempotency-key-reused", "the key made a different reservation"),
    ),
    description="Hold stock for an order: 201, or 200 with the first one for a repeated key.",
)

RESERVATION_FIND_BY_KEY = Operation(
    CONTEXT,
    "reservation_find_by_key",
    "GET",
    "/reservations",
    permission="inventory:read",
    callers=("orders",),
    problems=(Problem(404, "not-found", "no reservation was made with this key"),),
    description="The reservation made with an Idempotency-Key: a lost answer, found again.",
)

RESERVATION_GET = Operation(
    CONTEXT,
    "reservation_get",
    "GET",
    "/reservations/{reservation_id}",
    permission="inventory:read",
    problems=(Problem(404, "not-found", "no reservation has this id"),),
    description="One reservation.",
)

RESERVATION_COMMIT = Operation(
    CONTEXT,
    "reservation_commit",
    "POST",
    "/reservations/{reservation_id}/commit",
    permission="inventory:write",
    callers=("orders",),
    problems=(
        Problem(409, "reservation-released", "it was released (or expired) meanwhile"),
        Problem(409, "stock-inconsistent", "the stock no longer holds it"),
    ),
    description="The held stock leaves the shelf; idempotent.",
)

RESERVATION_RELEASE = Operation(
    CONTEXT,
    "reservation_release",
    "POST",
    "/reservations/{reservation_id}/release",
    permission="inventory:write",
    callers=("orders",),
    problems=(Problem(409, "reservation-committed", "it was committed: return it instead"),),
    description="Held stock is available again; idempotent.",
)

RESERVATION_RETURN = Operation(
    CONTEXT,
    "reservation_return",
    "POST",
    "/reservations/{reservation_id}/return",
    permission="inventory:write",
    callers=("orders",),
    description="Committed stock goes back on the shelf (a refund); others are left as they are.",
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(INVENTORY_RESERVED, INVENTORY_COMMITTED, INVENTORY_RELEASED, INVENTORY_RETURNED),
    operations=(
        RESERVATION_CREATE,
        RESERVATION_FIND_BY_KEY,
        RESERVATION_GET,
        RESERVATION_COMMIT,
        RESERVATION_RELEASE,
        RESERVATION_RETURN,
    ),
    description="Stock per SKU and the reservations holding it.",
)
