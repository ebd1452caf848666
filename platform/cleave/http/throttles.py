"""
Throttles: per client address for anonymous clients (`CLEAVE_THROTTLE_ANON`),
per customer or operator (`CLEAVE_THROTTLE_USER`); services are exempt.

The address is `cleave.core.proxies.client_address`: DRF's own `get_ident` keys on
the whole `X-Forwarded-For` header unless told how many proxies to believe, so
a client rotating a made-up first entry would count as a new one each time.
"""

from rest_framework import throttling
from rest_framework.settings import api_settings

from cleave.core.proxies import client_address


class _RateFromSettings:
    """Read the rate when asked, so a changed REST_FRAMEWORK setting applies at once."""

    scope: str

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request) -> str:
        return client_address(request)


class AnonThrottle(_RateFromSettings, throttling.AnonRateThrottle):
    """Throttle anonymous clients by address."""


class CustomerThrottle(_RateFromSettings, throttling.UserRateThrottle):
    """
    Throttle each customer or staff user; service-to-service calls are not
    throttled, and neither are anonymous clients: DRF's user throttle would
    count them by address, and they would get the lower of the two rates.
    """

    def allow_request(self, request, view) -> bool:
        user = request.user
        if getattr(user, "is_service", False) or not getattr(user, "is_authenticated", False):
            return True
        return super().allow_request(request, view)
