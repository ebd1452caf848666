"""The platform's own periodic jobs (see cleave.runtime.periodic)."""

from django.conf import settings

from cleave.core.registry import all_contexts
from cleave.messaging.relay import sweep
from cleave.runtime.periodic import periodic
from cleave.sagas.controls import dispatch_resumable


@periodic("cleave.events.relay_sweep", every=float(settings.CLEAVE_EVENT_RELAY_INTERVAL))
def relay_sweep() -> dict:
    """
    The relay sweep: publish committed events left pending (a crash, a broker
    away) and attempt the failed deliveries whose backoff has passed. The same
    sweep as `manage.py events relay`.
    """
    return sweep()


@periodic("cleave.sagas.resume", every=10.0)
def resume_sagas() -> int:
    """
    Continue sagas whose process died (their lease expired).

    Each is handed to the configured runner: driven here in the embedded
    default, sent to its context's queue under Celery.
    """
    return sum(dispatch_resumable(cfg.database) for cfg in all_contexts())
