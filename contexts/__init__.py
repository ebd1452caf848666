"""The bounded contexts; each sub-package is a Django app and knows no other context."""
