"""
The orders context's settings. Declared once here; config/settings.py installs
them (`cleave.core.conf.install`) as `settings.<NAME>`.
"""

from cleave.core.conf import Setting

SETTINGS = (
    Setting(
        "CLEAVE_CHECKOUT_DEADLINE",
        "int",
        default=300,
        minimum=1,
        doc=(
            "Seconds a checkout may take; past it the saga compensates and the order is cancelled"
            " (`service_unavailable` when a context was unavailable, else `timeout`)."
        ),
    ),
)
