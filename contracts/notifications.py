"""The notifications context's contract: it publishes nothing and calls no one."""

from cleave.core.declarations import ContextContract

CONTEXT = "notifications"

CONTRACT = ContextContract(
    CONTEXT, description="Messages to customers, in reaction to other contexts' events."
)
