"""The notifications context publishes no events: it only reacts to them."""
