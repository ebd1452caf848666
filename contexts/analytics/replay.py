"""
The analytics context's replay hook (`manage.py events replay --subscriber
analytics --reset`): empty the read model and this context's inbox records,
so replaying the event log rebuilds every counter from scratch.
"""

from .commands import analytics_reset


def reset() -> None:
    analytics_reset()
