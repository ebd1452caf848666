"""
Payment providers: the boundary between this context and whoever moves the money.

`PaymentProvider` states the contract; `FakeProvider` is the built-in provider
that understands the test tokens of the public API (`tok_visa`,
`tok_chargeDeclined`, `tok_timeout`, `tok_error`). `get_provider()` returns the
provider in use: the class named by the optional setting
`CLEAVE_PAYMENT_PROVIDER`, `FakeProvider` by default.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache

from django.conf import settings
from django.utils.module_loading import import_string

# How long the fake provider "hangs" on tok_timeout before giving up. Zero keeps
# tests and demos fast; raise it to watch a slow provider in action.
FAKE_TIMEOUT_DELAY_SECONDS = 0.0


class ProviderError(Exception):
    """The provider failed to process the request."""


class ProviderTimeout(ProviderError):
    """The provider did not answer in time; the outcome is unknown."""


@dataclass(frozen=True)
class ProviderResult:
    """
    The provider's answer to a charge.

    `status` is "approved" or "declined"; `reference` is the provider's id for
    the transaction; `decline_reason` says why a charge was declined
    ("declined" or "invalid_method").
    """

    APPROVED = "approved"
    DECLINED = "declined"

    status: str
    reference: str = ""
    decline_reason: str = ""

    @property
    def approved(self) -> bool:
        return self.status == self.APPROVED


class PaymentProvider:
    """
    Contract every provider fulfils.

    Every call may raise `ProviderTimeout` or `ProviderError`. `reference` is
    this context's reference for the operation; a real provider should use it
    as its idempotency key, so a repeated call never moves money twice, and
    must answer `lookup(reference)` so an unknown outcome (a timeout) can be
    settled by asking rather than guessing.
    """

    def charge(
        self, *, token: str, amount: Decimal, currency: str, reference: str
    ) -> ProviderResult:
        raise NotImplementedError(".charge() must be overridden")

    def refund(self, *, reference: str, amount: Decimal) -> None:
        """Refund `amount` of the charge the provider knows as `reference`."""
        raise NotImplementedError(".refund() must be overridden")

    def lookup(self, *, reference: str) -> ProviderResult | None:
        """What became of the charge made with our `reference`; None if it never arrived."""
        raise NotImplementedError(".lookup() must be overridden")


class FakeProvider(PaymentProvider):
    """
    A provider that needs no network: the token decides the outcome.

    It remembers, in this process, the charges it answered by reference (so
    `lookup` works and a repeated reference is answered, not charged, again)
    and the refunds it made, in `refunds` as (charge reference, amount): one
    per charge, however often it is asked. `tok_timeout` never reaches it:
    lookup finds nothing.
    """

    def __init__(self) -> None:
        self._charges: dict[str, ProviderResult] = {}
        self.refunds: list[tuple[str, Decimal]] = []
        self._lock = threading.Lock()

    APPROVED_TOKENS = frozenset({"tok_visa"})
    DECLINED_TOKENS = frozenset({"tok_chargeDeclined"})
    TIMEOUT_TOKENS = frozenset({"tok_timeout"})
    ERROR_TOKENS = frozenset({"tok_error"})

    def charge(
        self, *, token: str, amount: Decimal, currency: str, reference: str
    ) -> ProviderResult:
        if token in self.TIMEOUT_TOKENS:
            if FAKE_TIMEOUT_DELAY_SECONDS:
                time.sleep(FAKE_TIMEOUT_DELAY_SECONDS)
            raise ProviderTimeout("The payment provider did not answer in time.")
        if token in self.ERROR_TOKENS:
            raise ProviderError("The payment provider failed to process the charge.")
        if reference in self._charges:
            return self._charges[reference]
        provider_reference = f"fake_ch_{uuid.uuid4().hex}"
        if token in self.APPROVED_TOKENS:
            result = ProviderResult(ProviderResult.APPROVED, provider_reference)
        elif token in self.DECLINED_TOKENS:
            result = ProviderResult(ProviderResult.DECLINED, provider_reference, "declined")
        else:
            result = ProviderResult(ProviderResult.DECLINED, "", "invalid_method")
        self._charges[reference] = result
        return result

    def refund(self, *, reference: str, amount: Decimal) -> None:
        """Refund the charge `reference` once: a repeated refund of it refunds nothing more."""
        with self._lock:  # two concurrent refunds of one charge are one refund
            if all(refunded != reference for refunded, _amount in self.refunds):
                self.refunds.append((reference, amount))

    def lookup(self, *, reference: str) -> ProviderResult | None:
        return self._charges.get(reference)


@lru_cache(maxsize=4)
def _provider(path: str) -> PaymentProvider:
    provider = import_string(path)()
    if not isinstance(provider, PaymentProvider):
        raise TypeError(f"{path} is not a PaymentProvider")
    return provider


def provider_path() -> str:
    """The dotted path of the provider in use (`CLEAVE_PAYMENT_PROVIDER`, else the fake one)."""
    return settings.CLEAVE_PAYMENT_PROVIDER


def get_provider() -> PaymentProvider:
    """The provider in use."""
    return _provider(provider_path())
