from django.apps import AppConfig


class CleaveConfig(AppConfig):
    """The platform's own app: outbox, inbox, sagas, operator commands and admin."""

    name = "cleave"
    label = "cleave"
    verbose_name = "Cleave platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from cleave import contexts, observability, openapi  # noqa: F401 - checks, schema extensions

        observability.setup_tracing(getattr(settings, "CLEAVE_SERVICE_NAME", "cleave"))
