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
        from cleave import jobs, observability, openapi  # noqa: F401 - registrations
        from cleave.contexts import all_contexts, refuse_lost_events
        from cleave.events import registry
        from cleave.events.transports import get_transport

        for cfg in all_contexts():
            module = cfg.import_submodule("events")
            if module is not None:
                published = registry.register_module_event_types(module, context=cfg.label)
                refuse_lost_events(cfg.label, [event_type.name for event_type in published])
        # refuse an unknown CLEAVE_EVENT_TRANSPORT at start-up, not at first publish
        get_transport()
        observability.setup_tracing(settings.CLEAVE_SERVICE_NAME)
