"""
Events the inventory context publishes.

Declared in its contract (`contracts/inventory.py`), with the operations it
publishes; re-exported here, where the platform looks for a context's event types.
"""

from contracts.inventory import (
    INVENTORY_COMMITTED,
    INVENTORY_RELEASED,
    INVENTORY_RESERVED,
    INVENTORY_RETURNED,
)

__all__ = [
    "INVENTORY_COMMITTED",
    "INVENTORY_RELEASED",
    "INVENTORY_RESERVED",
    "INVENTORY_RETURNED",
]
