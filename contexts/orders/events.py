"""
Events the orders context publishes.

Declared in its contract (`contracts/orders.py`), with the operations it
publishes; re-exported here, where the platform looks for a context's event types.
"""

from contracts.orders import (
    ORDER_CANCELLED,
    ORDER_CONFIRMED,
    ORDER_PLACED,
)

__all__ = [
    "ORDER_CANCELLED",
    "ORDER_CONFIRMED",
    "ORDER_PLACED",
]
