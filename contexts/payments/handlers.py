"""
The payments context's reactions to other contexts' events: orders call its
API for the payments themselves; from users it learns whose tokens to refuse.
A deleted customer's payments stay as they are: the financial record, under
an id that no longer leads to a person once the users context forgot them.
"""

from cleave.auth import revocations
from cleave.messaging.envelope import Envelope
from cleave.messaging.subscriptions import subscriber
from contracts import users

from .apps import ALIAS


@subscriber(users.USER_BLOCKED, users.USER_DELETED)
def on_user_blocked_or_deleted(event: Envelope) -> None:
    """Refuse the customer's tokens on this context's endpoints."""
    revocations.revoke_for(event, alias=ALIAS)


@subscriber(users.USER_PASSWORD_CHANGED)
def on_user_password_changed(event: Envelope) -> None:
    """The customer's tokens issued before the change stop working here."""
    revocations.revoke_for(event, alias=ALIAS, at_key="changed_at")
