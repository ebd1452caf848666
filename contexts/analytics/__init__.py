"""Analytics context."""
