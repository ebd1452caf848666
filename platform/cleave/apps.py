from django.apps import AppConfig


class CleaveConfig(AppConfig):
    """The platform's own app: outbox, inbox, sagas, operator commands and admin."""

    name = "cleave"
    label = "cleave"
    verbose_name = "Cleave platform"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from cleave import contexts, openapi  # noqa: F401 - registers checks and schema extensions
