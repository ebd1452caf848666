"""Payments API: a customer reads their payment; services charge and refund."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.security import IsCustomer, ServicePermission

from .. import commands, queries

IDEMPOTENCY_HEADER = "Idempotency-Key"


class CustomerPaymentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class PaymentOutput(CustomerPaymentOutput):
    customer_id = serializers.UUIDField()
    failure_reason = serializers.CharField(allow_blank=True)


class PaymentDetailView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(responses={200: CustomerPaymentOutput}, summary="One of my payments")
    def get(self, request, payment_id):
        payment = queries.payment_get_for_customer(
            payment_id=payment_id, customer_id=request.user.id
        )
        return Response(CustomerPaymentOutput(payment).data)


class ChargeView(APIView):
    """Service endpoint: charge an order (`payments:write`). Declined is not an error."""

    permission_classes = (ServicePermission,)
    required_permission = "payments:write"

    class Input(serializers.Serializer):
        order_id = serializers.UUIDField()
        customer_id = serializers.UUIDField()
        amount = serializers.DecimalField(
            max_digits=12, decimal_places=2, min_value=Decimal("0.01")
        )
        currency = serializers.RegexField(r"^[A-Z]{3}$", max_length=3)
        payment_method = serializers.CharField(max_length=100)

    @extend_schema(
        request=Input,
        responses={201: PaymentOutput, 200: PaymentOutput},
        parameters=[
            OpenApiParameter(
                IDEMPOTENCY_HEADER,
                str,
                OpenApiParameter.HEADER,
                description="A repeated key returns the first payment (200) without charging.",
            )
        ],
        summary="Charge an order (service)",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        payment, created = commands.payment_charge(
            **data.validated_data,
            idempotency_key=request.headers.get(IDEMPOTENCY_HEADER),
        )
        return Response(
            PaymentOutput(payment).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class RefundView(APIView):
    """Service endpoint: refund a captured payment (`payments:write`); idempotent."""

    permission_classes = (ServicePermission,)
    required_permission = "payments:write"

    @extend_schema(request=None, responses={200: PaymentOutput}, summary="Refund (service)")
    def post(self, request, payment_id):
        payment = commands.payment_refund(payment_id=payment_id)
        return Response(PaymentOutput(payment).data)
