"""Users API: thin views that validate, call one command or query, serialize."""

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.api import EmailText, Secret, Text
from cleave.openapi import problem_answer
from cleave.security import IsCustomer, ServicePermission

from .. import commands, queries
from ..models import Customer


class CustomerOutput(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    status = serializers.CharField()
    created_at = serializers.DateTimeField()


class RegisterView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    class Input(serializers.Serializer):
        email = EmailText(max_length=254)
        password = Secret(min_length=8, max_length=128, trim_whitespace=False)
        name = Text(max_length=200)

        def validate(self, attrs):
            # Django's AUTH_PASSWORD_VALIDATORS, as for operators: common
            # passwords, all digits, too close to the email or the name
            # an unsaved customer: the similarity check reads its fields' names
            candidate = Customer(email=attrs["email"], name=attrs["name"])
            try:
                validate_password(attrs["password"], user=candidate)
            except DjangoValidationError as exc:
                raise serializers.ValidationError({"password": list(exc.messages)}) from None
            return attrs

    @extend_schema(
        request=Input,
        responses={201: CustomerOutput, 409: problem_answer("A customer with this email exists.")},
        summary="Register a customer",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        customer = commands.customer_register(**data.validated_data)
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


TokenOutput = inline_serializer(
    "TokenPair",
    {
        "access": serializers.CharField(),
        "refresh": serializers.CharField(),
        "token_type": serializers.CharField(),
        "expires_in": serializers.IntegerField(),
    },
)


class TokenView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    class Input(serializers.Serializer):
        email = Text(max_length=254)
        password = Secret(max_length=128, trim_whitespace=False)

    @extend_schema(
        request=Input,
        responses={200: TokenOutput, 401: problem_answer("The email or password is wrong.")},
        summary="Obtain tokens",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(commands.customer_authenticate(**data.validated_data))


class TokenRefreshView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    class Input(serializers.Serializer):
        refresh = Text(max_length=4096)

    @extend_schema(
        request=Input,
        responses={
            200: inline_serializer(
                "RefreshedTokens",
                {"access": serializers.CharField(), "refresh": serializers.CharField()},
            ),
            401: problem_answer("The refresh token is invalid, expired or no longer valid."),
        },
        summary="Rotate tokens",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(commands.customer_refresh_tokens(**data.validated_data))


class MeView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(
        responses={200: CustomerOutput, 404: problem_answer("The customer no longer exists.")},
        summary="The authenticated customer",
    )
    def get(self, request):
        customer = queries.customer_get(customer_id=request.user.id)
        return Response(CustomerOutput(customer).data)


class CustomerDetailView(APIView):
    """Service endpoint: another context checks a customer (`users:read`)."""

    permission_classes = (ServicePermission,)
    required_permission = "users:read"
    allow_staff = True

    @extend_schema(responses={200: CustomerOutput}, summary="A customer (service)")
    def get(self, request, customer_id):
        customer = queries.customer_get(customer_id=customer_id)
        return Response(CustomerOutput(customer).data)
