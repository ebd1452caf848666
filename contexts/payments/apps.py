from django.core.exceptions import ImproperlyConfigured

from cleave.core.registry import ContextConfig

# The database alias every module of this context writes and reads through.
ALIAS = "payments"


class PaymentsConfig(ContextConfig):
    name = "contexts.payments"
    label = "payments"
    database = ALIAS
    verbose_name = "Payments"

    def ready(self) -> None:
        super().ready()
        from .providers import get_provider, provider_path

        # A provider that cannot be loaded stops the process now, not at the first charge.
        try:
            get_provider()
        except (ImportError, TypeError) as exc:
            raise ImproperlyConfigured(
                f"CLEAVE_PAYMENT_PROVIDER={provider_path()!r} is not a loadable "
                f"PaymentProvider: {exc}"
            ) from None
