"""The event envelope every transport carries."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Envelope:
    """
    One domain event on the wire.

    `id` is the deduplication key; `source` the publishing context;
    `correlation_id` the business flow; `causation_id` the event or request
    that caused this one; `traceparent` the W3C trace context. `data` is the
    payload at `version`; `downcasts` the same event at each older version
    its publisher still publishes (`{"1": {...}}`, from the downcasters its
    contract declares), for consumers that still read one of those.
    """

    id: str
    type: str
    version: int
    source: str
    timestamp: str
    data: dict[str, Any]
    correlation_id: str | None = None
    causation_id: str | None = None
    traceparent: str | None = None
    downcasts: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        found = asdict(self)
        if found["downcasts"] is None:
            del found["downcasts"]  # the wire is unchanged for a type with one version
        return found

    def occurred_at(self) -> datetime:
        """When the event was published (in the publisher's transaction)."""
        return datetime.fromisoformat(self.timestamp)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Envelope:
        missing = {"id", "type", "version", "source", "timestamp", "data"} - set(raw)
        if missing:
            raise ValueError(f"Envelope lacks {sorted(missing)}")
        fields = {name: raw.get(name) for name in cls.__dataclass_fields__}
        return cls(**fields)
