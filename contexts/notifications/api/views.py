"""Notifications API: a customer lists the messages sent to them."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.generics import ListAPIView

from cleave.auth.permissions import IsCustomer

from .. import queries
from ..models import Notification


@extend_schema_serializer(component_name="Notification")
class NotificationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    kind = serializers.ChoiceField(choices=Notification.Kind.choices)
    channel = serializers.ChoiceField(choices=Notification.Channel.choices)
    subject = serializers.CharField()
    status = serializers.ChoiceField(choices=Notification.Status.choices)
    created_at = serializers.DateTimeField()


class NotificationListView(ListAPIView):
    permission_classes = (IsCustomer,)
    serializer_class = NotificationOutput

    def get_queryset(self):
        return queries.notification_list(customer_id=self.request.user.id)

    @extend_schema(summary="My notifications, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)
