"""The users context reacts to no other context's events yet."""
