"""
Events the users context publishes.

Declared in its contract (`contracts/users.py`), with the operations it
publishes; re-exported here, where the platform looks for a context's event types.
"""

from contracts.users import (
    USER_BLOCKED,
    USER_CREATED,
    USER_DELETED,
    USER_EMAIL_CHANGED,
    USER_PASSWORD_CHANGED,
    USER_UPDATED,
    USER_VERIFICATION_REQUESTED,
    USER_VERIFIED,
)

__all__ = [
    "USER_BLOCKED",
    "USER_CREATED",
    "USER_DELETED",
    "USER_EMAIL_CHANGED",
    "USER_PASSWORD_CHANGED",
    "USER_UPDATED",
    "USER_VERIFICATION_REQUESTED",
    "USER_VERIFIED",
]
