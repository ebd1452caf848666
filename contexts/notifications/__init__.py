"""Notifications context."""
