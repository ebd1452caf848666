"""The users context's contract: customer events, and customer look-ups for services."""

from django.db.models import TextChoices

from cleave.core.declarations import ContextContract, EventType, Operation, Problem

from ._schemas import DATETIME, STRING, UUID, obj

CONTEXT = "users"


class CustomerStatus(TextChoices):
    """Whether a customer may shop: a customer's `status`, as `customer_get` answers it."""

    ACTIVE = "active", "active"
    BLOCKED = "blocked", "blocked"


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
    description="An operator blocked a customer: their tokens stop working, checkouts stop.",
    schema=obj({"customer_id": UUID}),
)

USER_UPDATED = EventType(
    "user.updated",
    version=1,
    description=(
        "A customer's name or email changed (by the customer or an operator): `changed` "
        "names what changed, the other fields are the current values."
    ),
    schema=obj(
        {
            "customer_id": UUID,
            "email": STRING,
            "name": STRING,
            "email_verified": {"type": "boolean"},
            "changed": {
                "type": "array",
                "minItems": 1,
                "uniqueItems": True,
                "items": {"enum": ["name", "email"]},
            },
            "updated_at": DATETIME,
        }
    ),
)

USER_VERIFICATION_REQUESTED = EventType(
    "user.verification_requested",
    version=1,
    description=(
        "A customer's email address needs confirming (at registration, or after a change): "
        "the signed token proves the address once posted to `POST /api/users/verify`."
    ),
    schema=obj(
        {
            "customer_id": UUID,
            "email": STRING,
            "name": STRING,
            "token": STRING,
            "expires_at": DATETIME,
        }
    ),
)

USER_VERIFIED = EventType(
    "user.verified",
    version=1,
    description="A customer confirmed their email address.",
    schema=obj({"customer_id": UUID, "email": STRING, "verified_at": DATETIME}),
)

USER_PASSWORD_CHANGED = EventType(
    "user.password_changed",
    version=1,
    description=(
        "A customer's password changed: every context refuses the customer's tokens issued "
        "before `changed_at` (the new pair the customer got is issued at that instant)."
    ),
    schema=obj({"customer_id": UUID, "changed_at": DATETIME}),
)

USER_EMAIL_CHANGED = EventType(
    "user.email_changed",
    version=1,
    description=(
        "A customer's email address changed from `previous_email` to `email` (unverified): "
        "the previous address is told, and stays reserved until the new one is verified."
    ),
    schema=obj(
        {
            "customer_id": UUID,
            "email": STRING,
            "previous_email": STRING,
            "name": STRING,
            "changed_at": DATETIME,
        }
    ),
)

USER_DELETED = EventType(
    "user.deleted",
    version=1,
    description=(
        "A customer's account was deleted (by themselves or an operator): every context "
        "forgets their personal data and their tokens stop working."
    ),
    schema=obj({"customer_id": UUID, "deleted_at": DATETIME}),
)


def erased_fields(customer_id) -> dict[str, str]:
    """
    What a deleted customer's personal fields read in the copies of users'
    events that are kept (`cleave.messaging.replay.redact`): every context that
    keeps such copies redacts them with this, so each payload still fits
    its schema and no two contexts erase differently.
    """
    erased = f"erased-{customer_id}@invalid"
    return {"email": erased, "previous_email": erased, "name": "", "token": ""}


# --- operations --------------------------------------------------------------------------


CUSTOMER_GET = Operation(
    CONTEXT,
    "customer_get",
    "GET",
    "/customers/{customer_id}",
    permission="users:read",
    callers=("orders",),
    problems=(Problem(404, "not-found", "no customer has this id"),),
    description="A customer, to check it exists and is `active`.",
)

CUSTOMER_LIST = Operation(
    CONTEXT,
    "customer_list",
    "GET",
    "/customers",
    permission="users:read",
    description=(
        "Customers by email (exact, or a prefix ending in `*`) and status, oldest first, "
        "`limit` (10, at most 100) from `offset`."
    ),
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(
        USER_CREATED,
        USER_BLOCKED,
        USER_UPDATED,
        USER_VERIFICATION_REQUESTED,
        USER_VERIFIED,
        USER_PASSWORD_CHANGED,
        USER_EMAIL_CHANGED,
        USER_DELETED,
    ),
    operations=(CUSTOMER_GET, CUSTOMER_LIST),
    description="Customers: registration, verification, tokens, changes, blocking, deletion.",
)
