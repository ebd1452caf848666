import uuid

import pytest
from django.db import transaction

from cleave.messaging.inbox import HandlerOutcome
from cleave.testing import flows
from contexts.notifications import commands
from contexts.notifications.handlers import on_order_cancelled
from contexts.notifications.models import Notification, Recipient
from contexts.users.commands import customer_register
from tests.contexts.notifications.factories import (
    RecipientFactory,
    deliver,
    order_cancelled,
    order_confirmed,
    order_line,
    user_created,
)

pytestmark = flows


def notifications(**filters):
    return Notification.objects.using("notifications").filter(**filters)


def test_a_new_customer_is_remembered_and_welcomed_by_email(outbox_mail):
    customer = customer_register(email="Ada@Example.com", password="correct horse", name="Ada")

    recipient = Recipient.objects.using("notifications").get(pk=customer.id)
    assert recipient.email == "ada@example.com"
    assert recipient.name == "Ada"
    assert recipient.verified_at is None
    welcome = notifications(customer_id=customer.id).get(kind=Notification.Kind.WELCOME)
    assert welcome.status == Notification.Status.SENT
    assert welcome.sent_at is not None
    # and the token that verifies the address, to that address
    verify = notifications(customer_id=customer.id).get(kind=Notification.Kind.VERIFY_EMAIL)
    assert verify.status == Notification.Status.SENT
    assert verify.address == "ada@example.com"
    welcome_mail, verify_mail = outbox_mail
    assert welcome_mail.to == ["ada@example.com"]
    assert welcome_mail.subject == welcome.subject
    assert "Ada" in welcome_mail.subject
    assert verify_mail.to == ["ada@example.com"]
    assert "/api/users/verify" in verify_mail.body


def test_a_confirmed_order_is_announced_with_its_lines_and_total(outbox_mail):
    recipient = RecipientFactory(name="Grace")
    event = order_confirmed(
        recipient.customer_id,
        lines=[
            order_line(sku="TEE-1", name="Tee", unit_price="19.90", quantity=2),
            order_line(sku="MUG-1", name="Mug", unit_price="8.50", quantity=1),
        ],
    )

    assert deliver(event) == HandlerOutcome.APPLIED

    notification = notifications(customer_id=recipient.customer_id).get()
    assert notification.kind == Notification.Kind.ORDER_CONFIRMED
    assert notification.status == Notification.Status.SENT
    assert notification.event_id == uuid.UUID(event.id)
    order_short_id = event.data["order_id"].split("-")[0]
    [mail] = outbox_mail
    assert mail.to == [recipient.email]
    assert mail.subject == f"Your order {order_short_id} is confirmed"
    assert "Hello Grace," in mail.body
    assert "2 x Tee (TEE-1): 39.80 EUR" in mail.body
    assert "1 x Mug (MUG-1): 8.50 EUR" in mail.body
    assert "Total: 48.30 EUR" in mail.body


@pytest.mark.parametrize(
    ("reason", "words"),
    [
        ("payment_declined", "your payment was declined"),
        ("out_of_stock", "an item in your order is out of stock"),
        ("timeout", "the payment did not go through in time"),
    ],
)
def test_a_cancelled_order_is_explained_in_words(outbox_mail, reason, words):
    recipient = RecipientFactory()
    event = order_cancelled(recipient.customer_id, reason=reason)

    deliver(event)

    notification = notifications(customer_id=recipient.customer_id).get()
    assert notification.kind == Notification.Kind.ORDER_CANCELLED
    [mail] = outbox_mail
    assert mail.subject == f"Your order {event.data['order_id'].split('-')[0]} was cancelled"
    assert words in mail.body
    assert reason not in mail.body


def test_the_same_event_delivered_twice_sends_one_notification(outbox_mail):
    recipient = RecipientFactory()
    event = order_confirmed(recipient.customer_id)

    assert deliver(event) == HandlerOutcome.APPLIED
    assert deliver(event) == HandlerOutcome.DUPLICATE

    assert notifications(customer_id=recipient.customer_id).count() == 1
    assert len(outbox_mail) == 1


def test_a_handler_run_again_despite_the_inbox_creates_no_second_notification(outbox_mail):
    recipient = RecipientFactory()
    event = order_cancelled(recipient.customer_id)

    on_order_cancelled(event)
    on_order_cancelled(event)

    assert notifications(customer_id=recipient.customer_id).count() == 1
    assert len(outbox_mail) == 1


def test_an_order_for_a_customer_not_yet_known_is_sent_once_they_are(outbox_mail):
    customer_id = uuid.uuid4()

    deliver(order_confirmed(customer_id))

    waiting = notifications(customer_id=customer_id).get()
    assert waiting.status == Notification.Status.PENDING
    assert waiting.error == commands.NO_RECIPIENT
    assert outbox_mail == []

    deliver(user_created(customer_id, email="late@example.com", name="Late"))

    waiting.refresh_from_db()
    assert waiting.status == Notification.Status.SENT
    assert waiting.error == ""
    assert sorted(m.subject.split()[0] for m in outbox_mail) == ["Welcome", "Your"]
    assert {tuple(m.to) for m in outbox_mail} == {("late@example.com",)}


class BrokenBackend:
    """An email backend whose server is down."""

    def __init__(self, *args, **kwargs):
        pass

    def send_messages(self, messages):
        raise ConnectionRefusedError("SMTP server unreachable")


def test_a_mail_failure_marks_the_notification_failed_with_the_error(settings, outbox_mail):
    settings.EMAIL_BACKEND = f"{__name__}.BrokenBackend"
    recipient = RecipientFactory()

    deliver(order_confirmed(recipient.customer_id))

    notification = notifications(customer_id=recipient.customer_id).get()
    assert notification.status == Notification.Status.FAILED
    assert "SMTP server unreachable" in notification.error


def test_nothing_is_sent_when_the_storing_transaction_rolls_back(outbox_mail):
    recipient = RecipientFactory()

    with pytest.raises(RuntimeError), transaction.atomic(using="notifications"):
        commands.notification_create(
            event_id=uuid.uuid4(),
            customer_id=recipient.customer_id,
            kind=Notification.Kind.WELCOME,
            subject="Hi",
            body="Hi",
        )
        raise RuntimeError("the handler failed after storing")

    assert outbox_mail == []
    assert not notifications().exists()
