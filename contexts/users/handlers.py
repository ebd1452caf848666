"""
The users context's reactions to events: to its own, for the tokens it
accepts. Blocking and deleting happen here, but the tokens are checked by
the platform's authentication against this alias like anywhere else.
"""

from cleave.auth import revocations
from cleave.messaging.envelope import Envelope
from cleave.messaging.subscriptions import subscriber
from contracts import users

from .apps import ALIAS


@subscriber(users.USER_BLOCKED, users.USER_DELETED)
def on_user_blocked_or_deleted(event: Envelope) -> None:
    """Refuse the customer's tokens on this context's endpoints (`/me` and the rest)."""
    revocations.revoke_for(event, alias=ALIAS)
