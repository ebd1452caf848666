import uuid

import factory

from cleave.messaging.envelope import Envelope
from contexts.notifications.models import Notification, Recipient
from tests.support.events import (  # noqa: F401 - re-exported for the tests
    EnvelopeFactory,
    order_cancelled,
    order_confirmed,
    order_line,
    user_created,
)
from tests.support.events import deliver as deliver_to


class RecipientFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recipient
        database = "notifications"

    customer_id = factory.LazyFunction(uuid.uuid4)
    email = factory.Sequence(lambda n: f"customer{n}@example.com")
    name = factory.Faker("first_name")


class NotificationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Notification
        database = "notifications"

    customer_id = factory.LazyFunction(uuid.uuid4)
    kind = Notification.Kind.WELCOME
    subject = factory.Sequence(lambda n: f"Message {n}")
    body = "Hello."
    event_id = factory.LazyFunction(uuid.uuid4)


def deliver(envelope: Envelope) -> str:
    """Run the notifications handler of this event once, through the bus (inbox included)."""
    return deliver_to(envelope, to="notifications")
