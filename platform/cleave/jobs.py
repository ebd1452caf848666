"""The platform's own periodic jobs (see cleave.periodic)."""

from cleave.contexts import all_contexts
from cleave.periodic import periodic


@periodic("cleave.events.relay_sweep", every=5.0)
def relay_sweep() -> int:
    """Deliver committed events still pending in any local outbox (crash recovery, retries)."""
    from cleave.events.transports import get_transport

    transport = get_transport()
    return sum(transport.deliver_pending(cfg.database) for cfg in all_contexts())


@periodic("cleave.sagas.resume", every=10.0)
def resume_sagas() -> int:
    """
    Continue sagas whose process died (their lease expired).

    Each is handed to the configured runner: driven here in the embedded
    default, sent to its context's queue under Celery.
    """
    from cleave.sagas.engine import dispatch_resumable

    return sum(dispatch_resumable(cfg.database) for cfg in all_contexts())
