"""
Events the payments context publishes.

Declared in its contract (`contracts/payments.py`), with the operations it
publishes; re-exported here, where the platform looks for a context's event types.
"""

from contracts.payments import (
    PAYMENT_COMPLETED,
    PAYMENT_FAILED,
    PAYMENT_REFUNDED,
)

__all__ = [
    "PAYMENT_COMPLETED",
    "PAYMENT_FAILED",
    "PAYMENT_REFUNDED",
]
