"""Throttles: per address for anonymous clients, per customer; services are exempt."""

from rest_framework import throttling
from rest_framework.settings import api_settings


class _RateFromSettings:
    """Read the rate when asked, so a changed REST_FRAMEWORK setting applies at once."""

    scope: str

    def get_rate(self):
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class AnonThrottle(_RateFromSettings, throttling.AnonRateThrottle):
    """Throttle anonymous clients by address."""


class CustomerThrottle(_RateFromSettings, throttling.UserRateThrottle):
    """Throttle each customer or staff user; service-to-service calls are not throttled."""

    def allow_request(self, request, view) -> bool:
        if getattr(request.user, "is_service", False):
            return True
        return super().allow_request(request, view)
