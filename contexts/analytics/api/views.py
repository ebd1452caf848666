"""Analytics API: operators and services read the shop's summary."""

from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.auth.permissions import ServicePermission
from contracts import analytics

from .. import queries


@extend_schema_serializer(component_name="ProductSales")
class ProductSalesOutput(serializers.Serializer):
    product_id = serializers.UUIDField()
    sku = serializers.CharField()
    quantity = serializers.IntegerField()
    revenue = serializers.CharField(help_text='Decimal string, e.g. "19.90".')


@extend_schema_serializer(component_name="ShopSummary")
class SummaryOutput(serializers.Serializer):
    users_registered = serializers.IntegerField()
    users_verified = serializers.IntegerField()
    users_deleted = serializers.IntegerField()
    orders_confirmed = serializers.IntegerField()
    orders_cancelled = serializers.IntegerField()
    revenue = serializers.CharField(help_text='Decimal string, e.g. "123.40".')
    currency = serializers.CharField()
    top_products = ProductSalesOutput(many=True)


class SummaryView(APIView):
    """Service endpoint (`analytics:read`); staff sessions from the admin may read too."""

    permission_classes = (ServicePermission,)
    operation = analytics.SUMMARY_GET
    staff_permission = "analytics.view_counter"

    @extend_schema(responses={200: SummaryOutput}, summary="Shop summary (service or staff)")
    def get(self, request):
        return Response(SummaryOutput(queries.summary()).data)
