"""
Events the catalog context publishes.

Declared in its contract (`contracts/catalog.py`), with the operations it
publishes; re-exported here, where the platform looks for a context's event types.
"""

from contracts.catalog import (
    PRODUCT_CREATED,
)

__all__ = [
    "PRODUCT_CREATED",
]
