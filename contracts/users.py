"""The users context's contract: customer events, and customer look-ups for services."""

from cleave.contracts import ContextContract, Operation, Problem
from cleave.events import EventType

from ._schemas import DATETIME, STRING, UUID, answer, obj

CONTEXT = "users"

# --- events ------------------------------------------------------------------------------

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

# --- operations --------------------------------------------------------------------------

CUSTOMER = answer(
    {
        "id": UUID,
        "email": STRING,
        "name": STRING,
        "status": STRING,
        "created_at": DATETIME,
    }
)

CUSTOMER_GET = Operation(
    CONTEXT,
    "customer_get",
    "GET",
    "/customers/{customer_id}",
    permission="users:read",
    answer=CUSTOMER,
    problems=(Problem(404, "not-found", "no customer has this id"),),
    description="A customer, to check it exists and is `active`.",
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(USER_CREATED, USER_BLOCKED),
    operations=(CUSTOMER_GET,),
    description="Customers: registration, tokens, blocking.",
)
