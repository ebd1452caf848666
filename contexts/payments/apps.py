from django.core.exceptions import ImproperlyConfigured

from cleave.contexts import ContextConfig


class PaymentsConfig(ContextConfig):
    name = "contexts.payments"
    label = "payments"
    verbose_name = "Payments"

    def ready(self) -> None:
        super().ready()
        from django.conf import settings

        from .providers import DEFAULT_PROVIDER, get_provider

        # A provider that cannot be loaded stops the process now, not at the first charge.
        try:
            get_provider()
        except (ImportError, TypeError) as exc:
            path = getattr(settings, "CLEAVE_PAYMENT_PROVIDER", DEFAULT_PROVIDER)
            raise ImproperlyConfigured(
                f"CLEAVE_PAYMENT_PROVIDER={path!r} is not a loadable PaymentProvider: {exc}"
            ) from None
