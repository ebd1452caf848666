"""The analytics context's contract: a read model, published as one summary."""

from cleave.core.declarations import ContextContract, Operation

CONTEXT = "analytics"

SUMMARY_GET = Operation(
    CONTEXT,
    "summary_get",
    "GET",
    "/summary",
    permission="analytics:read",
    description="The shop's summary (also read by operators from the admin).",
)

CONTRACT = ContextContract(
    CONTEXT,
    operations=(SUMMARY_GET,),
    description="Counts and revenue, built from events (rebuildable by replay).",
)
