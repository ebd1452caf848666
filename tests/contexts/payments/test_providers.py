from decimal import Decimal

import pytest

from contexts.payments import providers
from contexts.payments.providers import (
    FakeProvider,
    PaymentProvider,
    ProviderError,
    ProviderResult,
    ProviderTimeout,
)


def charge(token: str) -> ProviderResult:
    return FakeProvider().charge(
        token=token, amount=Decimal("10.00"), currency="EUR", reference="ref-1"
    )


def test_tok_visa_is_approved_with_a_provider_reference():
    result = charge("tok_visa")
    assert result.approved
    assert result.reference.startswith("fake_ch_")


def test_tok_charge_declined_is_declined():
    result = charge("tok_chargeDeclined")
    assert result.status == ProviderResult.DECLINED
    assert result.decline_reason == "declined"


def test_an_unknown_token_is_declined_as_an_invalid_method():
    result = charge("tok_mastercard_of_dreams")
    assert result.status == ProviderResult.DECLINED
    assert result.decline_reason == "invalid_method"


def test_tok_timeout_raises_a_timeout_which_is_a_provider_error():
    with pytest.raises(ProviderTimeout):
        charge("tok_timeout")
    assert issubclass(ProviderTimeout, ProviderError)


def test_tok_error_raises_a_provider_error():
    with pytest.raises(ProviderError):
        charge("tok_error")


def test_a_refund_is_made_once_however_often_it_is_asked():
    provider = FakeProvider()
    first = provider.charge(token="tok_visa", amount=Decimal(10), currency="EUR", reference="a")
    other = provider.charge(token="tok_visa", amount=Decimal(5), currency="EUR", reference="b")

    provider.refund(reference=first.reference, amount=Decimal("10.00"))
    provider.refund(reference=first.reference, amount=Decimal("10.00"))
    provider.refund(reference=other.reference, amount=Decimal("5.00"))

    assert provider.refunds == [
        (first.reference, Decimal("10.00")),
        (other.reference, Decimal("5.00")),
    ]


def test_the_base_provider_states_its_contract():
    with pytest.raises(NotImplementedError):
        PaymentProvider().charge(token="t", amount=Decimal(1), currency="EUR", reference="r")
    with pytest.raises(NotImplementedError):
        PaymentProvider().refund(reference="r", amount=Decimal(1))
    with pytest.raises(NotImplementedError):
        PaymentProvider().lookup(reference="r")


def test_the_fake_provider_answers_a_repeated_reference_without_charging_again():
    provider = FakeProvider()
    first = provider.charge(token="tok_visa", amount=Decimal(1), currency="EUR", reference="r")
    again = provider.charge(token="tok_visa", amount=Decimal(1), currency="EUR", reference="r")

    assert again == first
    assert provider.lookup(reference="r") == first


def test_the_fake_provider_knows_nothing_of_a_timed_out_charge():
    provider = FakeProvider()
    with pytest.raises(ProviderTimeout):
        provider.charge(token="tok_timeout", amount=Decimal(1), currency="EUR", reference="t")

    assert provider.lookup(reference="t") is None


def test_the_fake_provider_is_the_default(settings):
    from cleave.core.conf import BY_NAME

    # the declared default (cleave.conf), as a process without the variable reads it
    settings.CLEAVE_PAYMENT_PROVIDER = BY_NAME["CLEAVE_PAYMENT_PROVIDER"].default
    assert isinstance(providers.get_provider(), FakeProvider)


class OtherProvider(FakeProvider):
    pass


def test_another_provider_can_be_plugged_in_by_setting(settings):
    settings.CLEAVE_PAYMENT_PROVIDER = f"{__name__}.OtherProvider"
    assert isinstance(providers.get_provider(), OtherProvider)


def test_a_provider_setting_naming_something_else_is_refused(settings):
    settings.CLEAVE_PAYMENT_PROVIDER = "decimal.Decimal"
    with pytest.raises(TypeError):
        providers.get_provider()
