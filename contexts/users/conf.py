"""
The users context's settings: its customers' sign-in limits and email
verification. Declared once here; config/settings.py installs them
(`cleave.core.conf.install`) as `settings.<NAME>`.
"""

from cleave.core.conf import Setting

SETTINGS = (
    Setting(
        "CLEAVE_SIGNIN_FAILURES",
        "int",
        default=5,
        minimum=1,
        doc=(
            "Failed customer sign-ins for one account from one address in a window; past them "
            "that account is refused from that address (429 with `Retry-After`, the right "
            "password included) until the window ends. Never from every address: the owner signs "
            "in from elsewhere."
        ),
    ),
    Setting(
        "CLEAVE_SIGNIN_ADDRESS_FAILURES",
        "int",
        default=20,
        minimum=1,
        doc=(
            "Failures from one address in a window: sign-ins for any account, refused refresh "
            "tokens, registrations of an address that exists (409), wrong passwords confirming a "
            "change; past them the address is refused (429) at sign-in, refresh and registration "
            "until the window ends."
        ),
    ),
    Setting(
        "CLEAVE_SIGNIN_WINDOW",
        "int",
        default=300,
        minimum=1,
        doc=(
            "Seconds a window of the customers' sign-in limits lasts (counted in the users alias, "
            "so every process shares them)."
        ),
    ),
    Setting(
        "CLEAVE_THROTTLE_VERIFY_RESEND",
        "rate",
        default="3/hour",
        doc=(
            "Verification mails one customer may ask for again (`POST /api/users/verify/resend`);"
            " more get 429 problem details with `Retry-After` (counted in the users alias)."
        ),
    ),
    Setting(
        "CLEAVE_EMAIL_VERIFY_MAX_AGE",
        "int",
        default=3 * 24 * 3600,
        minimum=60,
        doc=(
            "How long (seconds) the token mailed to verify a customer's email address is valid "
            "(3 days)."
        ),
    ),
)
