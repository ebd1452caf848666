"""
The catalog context's settings. Declared once here; config/settings.py installs
them (`cleave.core.conf.install`) as `settings.<NAME>`.

The currency is the catalog's because the catalog sets prices: an order copies
its lines' prices in it, a payment charges the order's total in it, analytics
sums them. Every process installs it, those that do not serve the catalog too.
"""

from cleave.core.conf import Setting

SETTINGS = (
    Setting(
        "CLEAVE_CURRENCY",
        "currency",
        default="EUR",
        doc=(
            "The shop's currency (ISO 4217): every price is in it, and so every order, payment "
            "and sales figure."
        ),
    ),
)
