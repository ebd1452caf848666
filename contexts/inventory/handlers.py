"""The inventory context reacts to no other context's events: it is called, not told."""
