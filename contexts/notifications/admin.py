from django.contrib import admin, messages

from cleave.admin.links import linked

from . import commands
from .models import Notification, Recipient


@admin.register(Recipient)
class RecipientAdmin(admin.ModelAdmin):
    customer = linked("customer_id", "users.customer")

    list_display = ("email", "name", "customer", "created_at")
    search_fields = ("email", "name", "customer_id")
    readonly_fields = ("customer", "email", "name", "created_at")
    fields = ("customer", "email", "name", "verified_at", "erased_at", "created_at")

    def has_add_permission(self, request) -> bool:
        return False  # a projection of user.created


# the ids a notification holds, shown on its page by the links that stand for them
NOTIFICATION_LINKS = {"customer_id": "customer", "event_id": "event"}


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    customer = linked("customer_id", "users.customer")
    # the event that caused it, in its publisher's outbox (found in whichever alias holds it)
    event = linked("event_id", "cleave.outboxevent", description="event id")

    list_display = ("created_at", "kind", "channel", "status", "customer", "subject", "sent_at")
    list_filter = ("status", "kind", "channel", "created_at")
    search_fields = ("id", "customer_id", "subject", "event_id")
    readonly_fields = fields = [
        NOTIFICATION_LINKS.get(field.name, field.name) for field in Notification._meta.fields
    ]
    actions = ("send",)

    def has_add_permission(self, request) -> bool:
        return False  # notifications are caused by events

    @admin.action(description="Send the selected unsent notifications now", permissions=["change"])
    def send(self, request, queryset):
        results = [
            commands.notification_send(notification_id=notification_id)
            for notification_id in queryset.exclude(status=Notification.Status.SENT).values_list(
                "id", flat=True
            )
        ]
        sent = sum(1 for n in results if n.status == Notification.Status.SENT)
        messages.info(request, f"Sent {sent} of {len(results)} notification(s).")
