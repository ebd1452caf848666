"""
Domain events: envelope, type registry, publish/subscribe, outbox and inbox.

Public surface::

    from cleave.events import EventType, Envelope, publish, subscriber
"""

from .bus import publish
from .envelope import Envelope
from .registry import EventType, InvalidEventPayload, UnknownEventType, subscriber

__all__ = [
    "Envelope",
    "EventType",
    "InvalidEventPayload",
    "UnknownEventType",
    "publish",
    "subscriber",
]
