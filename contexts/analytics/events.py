"""The analytics context publishes no events: it is a read model built from them."""
