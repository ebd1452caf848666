"""
The `Idempotency-Key` header, read the same way by every endpoint that honours it.
"""

from __future__ import annotations

from cleave.core.errors import invalid

IDEMPOTENCY_HEADER = "Idempotency-Key"


def idempotency_key(request, *, max_length: int = 255) -> str | None:
    """
    The request's `Idempotency-Key` (surrounding space dropped), or None when it
    sends none; a 400 problem naming the header when it is longer than the
    column that stores it. Every endpoint that honours the header reads it here.
    """
    key = (request.headers.get(IDEMPOTENCY_HEADER) or "").strip() or None
    if key is not None and len(key) > max_length:
        raise invalid(IDEMPOTENCY_HEADER, f"At most {max_length} characters.")
    return key
