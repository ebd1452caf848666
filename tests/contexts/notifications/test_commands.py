import uuid

import pytest

from cleave.core.errors import NotFound
from cleave.testing import flows, unit
from contexts.notifications import commands
from contexts.notifications.models import Notification
from tests.contexts.notifications.factories import NotificationFactory, RecipientFactory


@unit
def test_sending_delivers_the_mail_and_marks_the_notification_sent(outbox_mail):
    recipient = RecipientFactory(email="ada@example.com")
    notification = NotificationFactory(customer_id=recipient.customer_id, subject="Hello")

    sent = commands.notification_send(notification_id=notification.id)

    assert sent.status == Notification.Status.SENT
    assert sent.sent_at is not None
    [mail] = outbox_mail
    assert mail.to == ["ada@example.com"]
    assert mail.subject == "Hello"
    assert mail.from_email == "shop@cleave.localhost"


@unit
def test_a_sent_notification_is_not_sent_again(outbox_mail):
    recipient = RecipientFactory()
    notification = NotificationFactory(customer_id=recipient.customer_id)

    commands.notification_send(notification_id=notification.id)
    commands.notification_send(notification_id=notification.id)

    assert len(outbox_mail) == 1


@unit
def test_a_failed_notification_can_be_sent_again(outbox_mail):
    recipient = RecipientFactory()
    notification = NotificationFactory(
        customer_id=recipient.customer_id, status=Notification.Status.FAILED, error="timeout"
    )

    sent = commands.notification_send(notification_id=notification.id)

    assert sent.status == Notification.Status.SENT
    assert sent.error == ""
    assert len(outbox_mail) == 1


@unit
def test_without_a_recipient_the_notification_waits(outbox_mail):
    notification = NotificationFactory()

    waiting = commands.notification_send(notification_id=notification.id)

    assert waiting.status == Notification.Status.PENDING
    waiting.refresh_from_db()
    assert waiting.error == commands.NO_RECIPIENT
    assert outbox_mail == []


@unit
def test_sending_an_unknown_notification_is_not_found():
    with pytest.raises(NotFound):
        commands.notification_send(notification_id=uuid.uuid4())


@flows
def test_one_event_gives_at_most_one_notification_of_a_kind(outbox_mail):
    recipient = RecipientFactory()
    event_id = uuid.uuid4()
    arguments = {
        "event_id": event_id,
        "customer_id": recipient.customer_id,
        "subject": "Subject",
        "body": "Body",
    }

    first, created_first = commands.notification_create(kind="welcome", **arguments)
    again, created_again = commands.notification_create(kind="welcome", **arguments)
    other_kind, created_other = commands.notification_create(kind="order_confirmed", **arguments)

    assert created_first and not created_again and created_other
    assert again.pk == first.pk
    assert other_kind.pk != first.pk
    assert len(outbox_mail) == 2
