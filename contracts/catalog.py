"""The catalog context's contract: product events, and the public shop window."""

from cleave.core.declarations import ContextContract, EventType, Operation, Problem

from ._schemas import CURRENCY, MONEY, STRING, UUID, obj

CONTEXT = "catalog"

# --- events ------------------------------------------------------------------------------

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

# --- operations --------------------------------------------------------------------------


PRODUCT_LIST = Operation(
    CONTEXT,
    "product_list",
    "GET",
    "/products",
    permission=None,
    callers=("inventory",),
    problems=(Problem(404, "not-found", "a page past the last one"),),
    description="Active products, a page at a time (`next` is null on the last page).",
)

PRODUCT_GET = Operation(
    CONTEXT,
    "product_get",
    "GET",
    "/products/{product_id}",
    permission=None,
    callers=("orders",),
    problems=(Problem(404, "not-found", "no active product has this id"),),
    description="One product, with its current price.",
)

CONTRACT = ContextContract(
    CONTEXT,
    events=(PRODUCT_CREATED,),
    operations=(PRODUCT_LIST, PRODUCT_GET),
    description="Products and categories; every endpoint is public.",
)
