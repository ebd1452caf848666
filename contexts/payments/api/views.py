"""Payments API: a customer reads their payment; services charge and refund."""

from decimal import Decimal

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.auth.permissions import IsCustomer, ServicePermission
from cleave.core.errors import Conflict, NotFound
from cleave.http.fields import PatternText, Text
from cleave.http.idempotency import IDEMPOTENCY_HEADER, idempotency_key
from cleave.http.openapi import problem_answer
from contracts import payments

from .. import commands, queries
from ..commands import ProviderUnavailable


@extend_schema_serializer(component_name="Payment")
class CustomerPaymentOutput(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    amount = serializers.DecimalField(max_digits=12, decimal_places=2)
    currency = serializers.CharField()
    status = serializers.ChoiceField(choices=payments.PaymentStatus.choices)
    created_at = serializers.DateTimeField()


@extend_schema_serializer(component_name="Charge")
class PaymentOutput(CustomerPaymentOutput):
    customer_id = serializers.UUIDField()
    failure_reason = serializers.ChoiceField(
        choices=payments.FailureReason.choices,
        allow_blank=True,
        help_text="Why the charge was not captured; blank when it was.",
    )


# the charge the examples of error answers name
EXAMPLE_PAYMENT = "7c1e4b2a-9d3f-4a6e-b8c5-2f0d1e9a3b7c"


class PaymentDetailView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(responses={200: CustomerPaymentOutput}, summary="One of my payments")
    def get(self, request, payment_id):
        payment = queries.payment_get_for_customer(
            payment_id=payment_id, customer_id=request.user.id
        )
        return Response(CustomerPaymentOutput(payment).data)


class ChargeView(APIView):
    """
    Service endpoints on the charges collection.

    POST charges an order (`payments:write`; declined is not an error). GET
    finds the charge made with an idempotency key (`payments:read`), so a
    caller that never heard the answer can ask instead of guessing.
    """

    permission_classes = (ServicePermission,)
    operations = (payments.CHARGE_FIND_BY_KEY, payments.CHARGE_CREATE)
    staff_permission = "payments.view_payment"  # operators may look a charge up, never make one

    class Lookup(serializers.Serializer):
        idempotency_key = serializers.CharField(max_length=commands.MAX_KEY_LENGTH)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "idempotency_key",
                {"type": "string", "minLength": 1, "maxLength": commands.MAX_KEY_LENGTH},
                OpenApiParameter.QUERY,
                required=True,
                description="The Idempotency-Key the charge was made with.",
            )
        ],
        responses={
            200: PaymentOutput,
            404: problem_answer(
                "No charge was made with this key.",
                NotFound("No payment was charged with idempotency key 'order-3f2b8c1e'."),
            ),
        },
        operation_id="payments_charges_find_by_key",
        summary="Find a charge by its idempotency key (service)",
    )
    def get(self, request):
        data = self.Lookup(data=request.query_params)
        data.is_valid(raise_exception=True)
        payment = queries.payment_get_by_key(**data.validated_data)
        return Response(PaymentOutput(payment).data)

    @extend_schema_serializer(component_name="ChargeRequest")
    class Input(serializers.Serializer):
        order_id = serializers.UUIDField()
        customer_id = serializers.UUIDField()
        amount = serializers.DecimalField(
            max_digits=12, decimal_places=2, min_value=Decimal("0.01")
        )
        currency = PatternText(r"^[A-Z]{3}$", max_length=3)
        payment_method = Text(max_length=100)

    @extend_schema(
        request=Input,
        responses={
            201: PaymentOutput,
            200: PaymentOutput,
            409: problem_answer(
                "`idempotency-key-reused`: the key was used for a different charge.",
                Conflict(
                    "This Idempotency-Key was already used for a different charge.",
                    code="idempotency-key-reused",
                ),
            ),
        },
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
            idempotency_key=idempotency_key(request, max_length=commands.MAX_KEY_LENGTH),
        )
        return Response(
            PaymentOutput(payment).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class VoidView(APIView):
    """
    Service endpoint: settle a charge the caller gave up on (`payments:write`).

    Found by the charge's idempotency key: captured becomes refunded, pending
    is settled with the provider, absent is fenced so a late charge with that
    key never reaches the provider. Idempotent.
    """

    permission_classes = (ServicePermission,)
    operation = payments.CHARGE_VOID

    @extend_schema_serializer(component_name="ChargeVoid")
    class Input(ChargeView.Input):
        idempotency_key = Text(max_length=commands.MAX_KEY_LENGTH)

    @extend_schema(
        request=Input,
        responses={
            200: PaymentOutput,
            503: problem_answer(
                "The provider could not settle a pending charge; retry.",
                ProviderUnavailable(
                    "The payment provider could not say what became of payment "
                    f"{EXAMPLE_PAYMENT}; try again."
                ),
            ),
        },
        summary="Void a charge by its key (service)",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        payment = commands.payment_void(**data.validated_data)
        return Response(PaymentOutput(payment).data)


class RefundView(APIView):
    """Service endpoint: refund a captured payment (`payments:write`); idempotent."""

    permission_classes = (ServicePermission,)
    operation = payments.PAYMENT_REFUND

    @extend_schema(
        request=None,
        responses={
            200: PaymentOutput,
            503: problem_answer(
                "The provider could not refund; retry.",
                ProviderUnavailable(
                    f"The payment provider could not refund payment {EXAMPLE_PAYMENT}; try again."
                ),
            ),
        },
        summary="Refund (service)",
    )
    def post(self, request, payment_id):
        payment = commands.payment_refund(payment_id=payment_id)
        return Response(PaymentOutput(payment).data)
