from django.apps import AppConfig


class CleaveConfig(AppConfig):
    """The platform's own app: outbox, inbox, sagas, operator commands and admin."""

    name = "cleave"
    label = "cleave"
    verbose_name = "Cleave platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from cleave import contexts, jobs, observability, openapi  # noqa: F401 - registrations
        from cleave.events.transports import get_transport

        # refuse an unknown CLEAVE_EVENT_TRANSPORT at start-up, not at first publish
        get_transport()
        observability.setup_tracing(settings.CLEAVE_SERVICE_NAME)
