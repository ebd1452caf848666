"""The analytics context's contract: a read model, published as one summary."""

from cleave.core.declarations import ContextContract, Operation

from ._schemas import STRING, UUID, answer

CONTEXT = "analytics"

SUMMARY_GET = Operation(
    CONTEXT,
    "summary_get",
    "GET",
    "/summary",
    permission="analytics:read",
    answer=answer(
        {
            "users_registered": {"type": "integer"},
            "users_verified": {"type": "integer"},
            "users_deleted": {"type": "integer"},
            "orders_confirmed": {"type": "integer"},
            "orders_cancelled": {"type": "integer"},
            "revenue": STRING,
            "currency": STRING,
            "top_products": {
                "type": "array",
                "items": answer(
                    {
                        "product_id": UUID,
                        "sku": STRING,
                        "quantity": {"type": "integer"},
                        "revenue": STRING,
                    }
                ),
            },
        }
    ),
    description="The shop's summary (also read by operators from the admin).",
)

CONTRACT = ContextContract(
    CONTEXT,
    operations=(SUMMARY_GET,),
    description="Counts and revenue, built from events (rebuildable by replay).",
)
