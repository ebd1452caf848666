"""The notifications admin: a notification links to its customer and to the event that caused it."""

from __future__ import annotations

from cleave.messaging.models import OutboxEvent
from cleave.testing import unit
from tests.contexts.notifications.factories import NotificationFactory, RecipientFactory
from tests.contexts.users.factories import CustomerFactory
from tests.support.links import follow

pytestmark = unit

NOTIFICATIONS = "/admin/notifications/notification/"
RECIPIENTS = "/admin/notifications/recipient/"


def test_a_notification_links_to_its_customer_and_its_event(admin_client):
    customer = CustomerFactory(email="ada@example.com")
    event = OutboxEvent.objects.using("users").create(type="user.created", source="users", data={})
    notification = NotificationFactory(customer_id=customer.id, event_id=event.id)

    page = admin_client.get(f"{NOTIFICATIONS}{notification.id}/change/").content.decode()
    listed = admin_client.get(NOTIFICATIONS).content.decode()

    assert "ada@example.com" in follow(admin_client, page, str(customer.id))
    assert "ada@example.com" in follow(admin_client, listed, str(customer.id))
    assert f"user.created {event.id}" in follow(admin_client, page, str(event.id))


def test_a_recipient_links_to_its_customer(admin_client):
    customer = CustomerFactory(email="ada@example.com")
    recipient = RecipientFactory(customer_id=customer.id, email=customer.email)

    page = admin_client.get(f"{RECIPIENTS}{recipient.pk}/change/").content.decode()
    listed = admin_client.get(RECIPIENTS).content.decode()

    assert "Change customer" in follow(admin_client, page, str(customer.id))
    assert "Change customer" in follow(admin_client, listed, str(customer.id))
    assert 'name="verified_at_0"' in page  # what an operator may set is still there
