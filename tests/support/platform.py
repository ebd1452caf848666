"""Helpers shared by the platform tests."""

from __future__ import annotations

import uuid


def user_created_data(**overrides) -> dict:
    """A valid `user.created` payload."""
    return {
        "customer_id": str(uuid.uuid4()),
        "email": f"{uuid.uuid4().hex[:10]}@example.com",
        "name": "Ada Lovelace",
        "created_at": "2025-01-01T12:00:00+00:00",
        **overrides,
    }
