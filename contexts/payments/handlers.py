"""The payments context reacts to no other context's events: orders call its API."""
