"""
The inventory context's settings. Declared once here; config/settings.py
installs them (`cleave.core.conf.install`) as `settings.<NAME>`.
"""

from cleave.core.conf import Setting

SETTINGS = (
    Setting(
        "CLEAVE_RESERVATION_TTL",
        "int",
        default=900,
        minimum=1,
        doc="Seconds a reservation of stock is held before the expiry job releases it.",
    ),
)
