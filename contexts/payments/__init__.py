"""Payments context."""
