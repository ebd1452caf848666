import uuid
from decimal import Decimal

import factory

from contexts.payments.models import Payment


class PaymentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Payment
        database = "payments"

    order_id = factory.LazyFunction(uuid.uuid4)
    customer_id = factory.LazyFunction(uuid.uuid4)
    amount = Decimal("19.90")
    currency = "EUR"
    method = "tok_visa"
    status = Payment.Status.CAPTURED
    provider_reference = factory.Sequence(lambda n: f"fake_ch_{n}")
