"""Inventory API: thin views that validate, call one command or query, serialize."""

from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.auth.permissions import ServicePermission
from cleave.core.errors import Conflict, NotFound
from cleave.http.fields import Text, WholeNumber
from cleave.http.idempotency import idempotency_key
from cleave.http.openapi import problem_answer
from contracts import inventory

from .. import commands, queries
from ..commands import OutOfStock

# the reservation the examples of error answers name
EXAMPLE = "9a4d2c7e-1b3f-4e8a-b6d5-0c2e9f7a1d3b"

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    location=OpenApiParameter.HEADER,
    required=False,
    description="A repeated key returns the first reservation (200) and holds nothing again.",
)


@extend_schema_serializer(component_name="ReservationRequestLine")
class LineInput(serializers.Serializer):
    sku = Text(max_length=commands.SKU_MAX_LENGTH, trim_whitespace=False)
    quantity = WholeNumber(min_value=1, max_value=commands.MAX_QUANTITY)


@extend_schema_serializer(component_name="Stock")
class StockOutput(serializers.Serializer):
    sku = serializers.CharField()
    on_hand = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


@extend_schema_serializer(component_name="ReservationLine")
class LineOutput(serializers.Serializer):
    sku = serializers.CharField()
    quantity = serializers.IntegerField()


@extend_schema_serializer(component_name="Reservation")
class ReservationOutput(serializers.Serializer):
    id = serializers.UUIDField()
    order_id = serializers.UUIDField()
    status = serializers.ChoiceField(choices=inventory.ReservationStatus.choices)
    lines = LineOutput(many=True, source="line_items")
    expires_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()


class StockDetailView(APIView):
    """Public: how many of a SKU can still be bought."""

    permission_classes = (AllowAny,)

    @extend_schema(
        responses={
            200: StockOutput,
            404: problem_answer(
                "No stock is kept for this SKU.", NotFound("No stock is kept for SKU MUG-042.")
            ),
        },
        summary="Stock of a SKU",
    )
    def get(self, request, sku):
        return Response(StockOutput(queries.stock_get(sku=sku)).data)


class ReservationCreateView(APIView):
    """
    Service endpoints on the reservations collection.

    POST holds stock (`inventory:write`); GET finds the reservation made with
    an idempotency key (`inventory:read`), so a caller that never heard the
    answer can ask instead of guessing.
    """

    permission_classes = (ServicePermission,)
    operations = (inventory.RESERVATION_FIND_BY_KEY, inventory.RESERVATION_CREATE)
    staff_permission = "inventory.view_reservation"

    class Lookup(serializers.Serializer):
        idempotency_key = serializers.CharField(max_length=commands.IDEMPOTENCY_KEY_MAX_LENGTH)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "idempotency_key",
                {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": commands.IDEMPOTENCY_KEY_MAX_LENGTH,
                },
                OpenApiParameter.QUERY,
                required=True,
                description="The Idempotency-Key the reservation was made with.",
            )
        ],
        responses={
            200: ReservationOutput,
            404: problem_answer(
                "No reservation was made with this key.",
                NotFound("No reservation was made with idempotency key 'order-3f2b8c1e'."),
            ),
        },
        operation_id="inventory_reservations_find_by_key",
        summary="Find a reservation by its idempotency key (service)",
    )
    def get(self, request):
        data = self.Lookup(data=request.query_params)
        data.is_valid(raise_exception=True)
        reservation = queries.reservation_get_by_key(**data.validated_data)
        return Response(ReservationOutput(reservation).data)

    @extend_schema_serializer(component_name="ReservationRequest")
    class Input(serializers.Serializer):
        order_id = serializers.UUIDField()
        # A ListField (not `many=True`) so a bad list reports under `lines`
        # rather than `lines.non_field_errors`.
        lines = serializers.ListField(
            child=LineInput(), allow_empty=False, max_length=commands.MAX_LINES
        )

    @extend_schema(
        request=Input,
        parameters=[IDEMPOTENCY_KEY],
        responses={
            201: ReservationOutput,
            200: ReservationOutput,
            409: problem_answer(
                "`out-of-stock` (`errors.lines` names the short SKUs), or "
                "`idempotency-key-reused` for a different reservation.",
                OutOfStock("Not enough stock for MUG-042.", errors={"lines": ["MUG-042"]}),
                Conflict(
                    "This Idempotency-Key was already used for a different reservation.",
                    code="idempotency-key-reused",
                ),
            ),
        },
        summary="Hold stock for an order (service)",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        key = idempotency_key(request, max_length=commands.IDEMPOTENCY_KEY_MAX_LENGTH)
        reservation, created = commands.reservation_create(
            order_id=data.validated_data["order_id"],
            lines=data.validated_data["lines"],
            idempotency_key=key,
        )
        return Response(
            ReservationOutput(reservation).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )


class ReservationDetailView(APIView):
    permission_classes = (ServicePermission,)
    operation = inventory.RESERVATION_GET
    staff_permission = "inventory.view_reservation"

    @extend_schema(
        responses={
            200: ReservationOutput,
            404: problem_answer(
                "No reservation has this id.", NotFound(f"No reservation {EXAMPLE}.")
            ),
        },
        summary="A reservation (service)",
    )
    def get(self, request, reservation_id):
        reservation = queries.reservation_get(reservation_id=reservation_id)
        return Response(ReservationOutput(reservation).data)


class ReservationCommitView(APIView):
    permission_classes = (ServicePermission,)
    operation = inventory.RESERVATION_COMMIT

    @extend_schema(
        request=None,
        responses={
            200: ReservationOutput,
            409: problem_answer(
                "The reservation was released (`reservation-released`), or the stock no longer "
                "holds it (`stock-inconsistent`).",
                Conflict(
                    f"Reservation {EXAMPLE} was released (expired) and can no longer be committed.",
                    code="reservation-released",
                ),
                Conflict(
                    "The stock of MUG-042 no longer holds this reservation.",
                    code="stock-inconsistent",
                ),
            ),
        },
        summary="Commit a reservation (service)",
    )
    def post(self, request, reservation_id):
        reservation = commands.reservation_commit(reservation_id=reservation_id)
        return Response(ReservationOutput(reservation).data)


class ReservationReleaseView(APIView):
    permission_classes = (ServicePermission,)
    operation = inventory.RESERVATION_RELEASE

    @extend_schema_serializer(component_name="ReservationRelease")
    class Input(serializers.Serializer):
        reason = Text(required=False, max_length=commands.REASON_MAX_LENGTH, default="released")

    @extend_schema(
        request=Input,
        responses={
            200: ReservationOutput,
            409: problem_answer(
                "The reservation is committed (`reservation-committed`): return it instead.",
                Conflict(
                    f"Reservation {EXAMPLE} is committed and can no longer be released.",
                    code="reservation-committed",
                ),
            ),
        },
        summary="Release a reservation (service)",
    )
    def post(self, request, reservation_id):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        reservation = commands.reservation_release(
            reservation_id=reservation_id, reason=data.validated_data["reason"]
        )
        return Response(ReservationOutput(reservation).data)


class ReservationReturnView(APIView):
    """Service endpoint: put a committed reservation's stock back (`inventory:write`)."""

    permission_classes = (ServicePermission,)
    operation = inventory.RESERVATION_RETURN

    @extend_schema_serializer(component_name="ReservationReturn")
    class Input(serializers.Serializer):
        reason = Text(required=False, max_length=commands.REASON_MAX_LENGTH, default="returned")

    @extend_schema(
        request=Input,
        responses={200: ReservationOutput},
        summary="Return committed stock to the shelf (service)",
    )
    def post(self, request, reservation_id):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        reservation = commands.reservation_return(
            reservation_id=reservation_id, reason=data.validated_data["reason"]
        )
        return Response(ReservationOutput(reservation).data)
