"""Orders API: cart, checkout and the customer's orders."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.auth.permissions import IsCustomer
from cleave.core.errors import Conflict, Invalid, ServiceError, ServiceUnavailable, invalid
from cleave.http.fields import Text, WholeNumber
from cleave.http.idempotency import idempotency_key
from cleave.http.openapi import problem_answer

from .. import commands, queries
from ..commands import EmptyCart
from ..models import MAX_QUANTITY, MIN_QUANTITY, Order

MONEY = {"max_digits": 12, "decimal_places": 2, "coerce_to_string": True}

# the order the examples of error answers name
EXAMPLE_ORDER = "3f2b8c1e-6d4a-4b9e-a1c7-5e8d2f0b9a6c"


@extend_schema_serializer(component_name="CartItem")
class CartItemOutput(serializers.Serializer):
    id = serializers.UUIDField()
    product_id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    unit_price = serializers.DecimalField(**MONEY)
    quantity = serializers.IntegerField()
    line_total = serializers.DecimalField(**MONEY)


@extend_schema_serializer(component_name="Cart")
class CartOutput(serializers.Serializer):
    id = serializers.UUIDField()
    items = CartItemOutput(many=True)
    total = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()


@extend_schema_serializer(component_name="OrderLine")
class OrderLineOutput(serializers.Serializer):
    product_id = serializers.UUIDField()
    sku = serializers.CharField()
    name = serializers.CharField()
    unit_price = serializers.DecimalField(**MONEY)
    quantity = serializers.IntegerField()
    line_total = serializers.DecimalField(**MONEY)


@extend_schema_serializer(component_name="Order")
class OrderOutput(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(
        choices=Order.Status.choices,
        help_text="`pending` while the checkout runs; `confirmed` and `cancelled` are final.",
    )
    lines = OrderLineOutput(many=True)
    total = serializers.DecimalField(**MONEY)
    currency = serializers.CharField()
    payment_id = serializers.UUIDField(allow_null=True)
    cancellation_reason = serializers.ChoiceField(
        choices=Order.CancellationReason.choices,
        allow_null=True,
        help_text="Why the order was cancelled; null unless it was.",
    )
    created_at = serializers.DateTimeField()


class CartView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(responses={200: CartOutput}, summary="The customer's cart")
    def get(self, request):
        # a read: a cart not created yet is shown empty, with the id it will have
        return Response(CartOutput(queries.cart_for_customer(customer_id=request.user.id)).data)


class CartItemsView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema_serializer(component_name="CartItemAddition")
    class Input(serializers.Serializer):
        product_id = serializers.UUIDField()
        quantity = WholeNumber(min_value=MIN_QUANTITY, max_value=MAX_QUANTITY)

    @extend_schema(
        request=Input,
        responses={
            201: CartItemOutput,
            400: problem_answer(
                "Invalid input (more than a cart holds of one product), or no such product "
                "(`unknown-product`).",
                invalid(
                    "quantity",
                    f"A cart holds at most {MAX_QUANTITY} of one product.",
                    detail=f"A cart holds at most {MAX_QUANTITY} of one product (998 are in it).",
                ),
                Invalid(
                    "No product 0b7a9f3e-5c1d-4e2a-8f6b-9d3c2a1e4f5b.",
                    code="unknown-product",
                    errors={"product_id": ["No product 0b7a9f3e-5c1d-4e2a-8f6b-9d3c2a1e4f5b."]},
                ),
            ),
            502: problem_answer(
                "The catalog failed to answer (`dependency-failed`).",
                ServiceError("catalog", 500, None),
            ),
            503: problem_answer(
                "The catalog is unavailable (`dependency-unavailable`); retry.",
                ServiceUnavailable("catalog"),
            ),
        },
        summary="Add to cart",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        item = commands.cart_add_item(customer_id=request.user.id, **data.validated_data)
        return Response(CartItemOutput(item).data, status=status.HTTP_201_CREATED)


class CartItemView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema_serializer(component_name="CartItemChange")
    class Input(serializers.Serializer):
        quantity = WholeNumber(min_value=MIN_QUANTITY, max_value=MAX_QUANTITY)

    @extend_schema(request=Input, responses={200: CartItemOutput}, summary="Change quantity")
    def patch(self, request, item_id):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        item = commands.cart_update_item(
            customer_id=request.user.id, item_id=item_id, **data.validated_data
        )
        return Response(CartItemOutput(item).data)

    @extend_schema(responses={204: None}, summary="Remove from cart")
    def delete(self, request, item_id):
        commands.cart_remove_item(customer_id=request.user.id, item_id=item_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema_serializer(component_name="OrderState")
class OrderStateOutput(serializers.Serializer):
    order_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=Order.Status.choices)
    saga_id = serializers.UUIDField(allow_null=True)


class CheckoutView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema_serializer(component_name="Checkout")
    class Input(serializers.Serializer):
        payment_method = Text(max_length=100)

    Output = OrderStateOutput

    @extend_schema(
        request=Input,
        responses={
            202: Output,
            400: problem_answer(
                "Invalid input, or the cart is empty (`empty-cart`).",
                EmptyCart("Add products to the cart before checking out."),
            ),
            409: problem_answer(
                "`idempotency-key-reused`: the key was used for a checkout with another "
                "payment method.",
                Conflict(
                    "This Idempotency-Key was already used for a checkout with another "
                    "payment method.",
                    code="idempotency-key-reused",
                ),
            ),
        },
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                str,
                OpenApiParameter.HEADER,
                description=(
                    "A repeated key returns the first order (202) and starts nothing, also to "
                    "requests that race the first."
                ),
            )
        ],
        summary="Check out the cart",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key(request)
        order, _created = commands.order_checkout(
            customer_id=request.user.id, idempotency_key=key, **data.validated_data
        )
        body = {"order_id": order.id, "status": order.status, "saga_id": order.saga_id}
        return Response(self.Output(body).data, status=status.HTTP_202_ACCEPTED)


class OrderListView(ListAPIView):
    permission_classes = (IsCustomer,)
    serializer_class = OrderOutput

    @extend_schema(summary="The customer's orders, newest first")
    def get(self, request, *args, **kwargs):
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return queries.orders_for_customer(customer_id=self.request.user.id)


class OrderDetailView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(responses={200: OrderOutput}, summary="One of the customer's orders")
    def get(self, request, order_id):
        order = queries.order_for_customer(customer_id=request.user.id, order_id=order_id)
        return Response(OrderOutput(order).data)


class OrderCancelView(APIView):
    """A customer cancels their pending order; the checkout saga compensates."""

    permission_classes = (IsCustomer,)

    @extend_schema(
        request=None,
        responses={
            202: OrderStateOutput,
            409: problem_answer(
                "`order-confirmed` (ask for a refund) or `order-cancelled`.",
                Conflict(
                    f"Order {EXAMPLE_ORDER} is confirmed and can no longer be cancelled here; "
                    "ask customer service for a refund.",
                    code="order-confirmed",
                ),
                Conflict(
                    f"Order {EXAMPLE_ORDER} was already cancelled (payment_declined).",
                    code="order-cancelled",
                ),
            ),
        },
        summary="Cancel a pending order",
        description="202 while or after the checkout saga compensates (poll the order); "
        "409 when the order is confirmed (a refund goes through customer service) "
        "or was cancelled for another reason; 404 for another customer's order.",
    )
    def post(self, request, order_id):
        order = commands.order_request_cancel(customer_id=request.user.id, order_id=order_id)
        body = {"order_id": order.id, "status": order.status, "saga_id": order.saga_id}
        return Response(OrderStateOutput(body).data, status=status.HTTP_202_ACCEPTED)
