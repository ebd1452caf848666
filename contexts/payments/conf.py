"""
The payments context's settings. Declared once here; config/settings.py
installs them (`cleave.core.conf.install`) as `settings.<NAME>`.
"""

from cleave.core.conf import Setting

SETTINGS = (
    Setting(
        "CLEAVE_PAYMENT_PROVIDER",
        "str",
        default="contexts.payments.providers.FakeProvider",
        doc=(
            "Dotted path of the payment provider class (the built-in fake honours the test "
            "tokens). It must import and be a `PaymentProvider`, or the process stops at start-up."
        ),
    ),
)
