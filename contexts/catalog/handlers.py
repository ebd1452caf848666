"""The catalog context reacts to no other context's events: it only publishes."""
