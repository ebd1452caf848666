"""Events the users context publishes."""

from cleave.events import EventType
from cleave.events.registry import DATETIME, STRING, UUID, obj

USER_CREATED = EventType(
    "user.created",
    version=1,
    description="A customer registered.",
    schema=obj({"customer_id": UUID, "email": STRING, "name": STRING, "created_at": DATETIME}),
)

USER_BLOCKED = EventType(
    "user.blocked",
    version=1,
    description="An operator blocked a customer.",
    schema=obj({"customer_id": UUID}),
)
