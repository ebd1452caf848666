"""Periodic jobs of the inventory context (see cleave.periodic)."""

from cleave.observability.metrics import RESERVATION_EXPIRIES
from cleave.runtime.periodic import periodic

from . import commands

# Reservations last CLEAVE_RESERVATION_TTL (15 minutes by default); sweeping
# every minute frees stock held by checkouts that never finished soon after.
RELEASE_EVERY_SECONDS = 60.0


@periodic("inventory.release_expired", every=RELEASE_EVERY_SECONDS, context="inventory")
def release_expired() -> int:
    """Release held reservations past their expiry; safe in several processes (row locks)."""
    released = commands.reservations_release_expired()
    RESERVATION_EXPIRIES.inc(released)
    return released
