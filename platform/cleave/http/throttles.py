"""
Throttles: per client address for anonymous clients (`CLEAVE_THROTTLE_ANON`),
per customer or operator (`CLEAVE_THROTTLE_USER`); services are exempt.

The address is `cleave.core.proxies.client_address`: DRF's own `get_ident` keys on
the whole `X-Forwarded-For` header unless told how many proxies to believe, so
a client rotating a made-up first entry would count as a new one each time.

Each rate is counted in fixed windows of its period, one counter per client
and window in the cache (`add`, then `incr`), rather than DRF's list of the
time of every request in the period, which it reads, trims and writes back
whole at every request: under py-spy that list was 12 % of a product list's
time at a high rate (bench/read.py), and it grows with the rate. A client
may send up to twice its rate across a window's boundary; `Retry-After`
says when the window ends. Written here as an override of DRF's throttle,
whose rates, scopes and 429 answers stay as they are.
"""

import math

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

    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = math.floor(self.now / self.duration)
        self.window_ends = (window + 1) * self.duration
        key = f"{self.key}:{window}"
        self.cache.add(key, 0, timeout=math.ceil(self.duration) + 1)
        try:
            count = self.cache.incr(key)
        except ValueError:  # the window's counter expired between the two calls
            self.cache.add(key, 1, timeout=math.ceil(self.duration) + 1)
            count = 1
        return count <= self.num_requests

    def wait(self) -> float:
        return max(self.window_ends - self.now, 0.0)


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
