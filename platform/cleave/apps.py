from django.apps import AppConfig
from django.conf import settings


class CleaveConfig(AppConfig):
    """The platform's own app: outbox, inbox, sagas, operator commands and admin."""

    name = "cleave"
    label = "cleave"
    verbose_name = "Cleave platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Imported here, not at the top: Django imports an AppConfig's module
        # before any model exists, and these modules define or import models.
        from cleave.core import locations
        from cleave.core.registry import all_contexts
        from cleave.http import openapi  # noqa: F401 - registrations
        from cleave.messaging import types
        from cleave.messaging.subscriptions import refuse_lost_events
        from cleave.messaging.transports import get_transport
        from cleave.observability import tracing
        from cleave.runtime import jobs  # noqa: F401 - registrations

        for cfg in all_contexts():
            published = types.register_contract(cfg.label)
            refuse_lost_events(cfg.label, [event_type.name for event_type in published])
        # refuse an unknown CLEAVE_EVENT_TRANSPORT at start-up, not at first publish
        get_transport()
        tracing.setup_tracing(settings.CLEAVE_SERVICE_NAME)
        # a context alias that moved is opened where it went (cleave.core.locations)
        locations.install()
