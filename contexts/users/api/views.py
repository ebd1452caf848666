"""Users API: thin views that validate, call one command or query, serialize."""

from contextlib import nullcontext

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema, extend_schema_serializer, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.auth.permissions import IsCustomer, ServicePermission
from cleave.core.errors import Conflict, NotFound, Throttled
from cleave.core.proxies import client_address
from cleave.http.fields import EmailText, QueryNumber, Secret, Text
from cleave.http.openapi import problem_answer
from contracts import users

from .. import commands, limits, queries
from ..commands import InvalidCredentials, InvalidVerificationToken, WrongPassword
from ..emails import UnacceptableEmail, normalize_email
from ..models import Customer


@extend_schema_serializer(component_name="Customer")
class CustomerOutput(serializers.Serializer):
    id = serializers.UUIDField()
    email = serializers.EmailField()
    name = serializers.CharField()
    status = serializers.ChoiceField(choices=Customer.Status.choices)
    email_verified = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class _Normalised:
    """
    Normalise the address first (`..emails`: case, NFKC, invisible characters
    dropped), refusing control and bidirectional characters with one message
    wherever an address is given.
    """

    def to_internal_value(self, data):
        if isinstance(data, str):
            try:
                data = normalize_email(data)
            except UnacceptableEmail as exc:
                raise serializers.ValidationError(str(exc), code="invalid") from None
        return super().to_internal_value(data)


class CustomerEmail(_Normalised, EmailText):
    """An address to store: normalised, then checked to be an email address."""


class SignInEmail(_Normalised, Text):
    """An address to look up: normalised the same way; any other string is simply unknown."""


def check_password_rules(password: str, customer: Customer, field: str = "password") -> None:
    """
    Django's AUTH_PASSWORD_VALIDATORS, as for operators: common passwords, all
    digits, too short, too close to the email or the name. The messages go in
    the problem's `errors[field]`.
    """
    try:
        validate_password(password, user=customer)
    except DjangoValidationError as exc:
        raise serializers.ValidationError({field: list(exc.messages)}) from None


TOO_MANY = (
    "Too many failures from this address, or for this account from it; `Retry-After` says "
    "when to try again (the same answer whether or not the account exists)."
)

# Examples of the answers below (cleave.http.openapi.problem_answer)
SIGN_IN_REFUSED = Throttled(limits.SIGN_IN_REFUSED, retry_after=60)
WRONG_PASSWORD = WrongPassword("The current password is wrong.")
EMAIL_TAKEN = Conflict("A customer with email ada@example.com already exists.", code="email-taken")


class RegisterView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema_serializer(component_name="CustomerRegistration")
    class Input(serializers.Serializer):
        email = CustomerEmail(max_length=254)
        password = Secret(min_length=8, max_length=128, trim_whitespace=False)
        name = Text(max_length=200)

        def validate(self, attrs):
            # an unsaved customer: the similarity check reads its fields' names
            candidate = Customer(email=attrs["email"], name=attrs["name"])
            check_password_rules(attrs["password"], candidate)
            return attrs

    @extend_schema(
        request=Input,
        responses={
            201: CustomerOutput,
            409: problem_answer("A customer with this email exists.", EMAIL_TAKEN),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary="Register a customer",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        with limits.registration(address=client_address(request)):
            customer = commands.customer_register(**data.validated_data)
        return Response(CustomerOutput(customer).data, status=status.HTTP_201_CREATED)


TokenOutput = inline_serializer(
    "TokenPair",
    {
        "access": serializers.CharField(),
        "refresh": serializers.CharField(),
        "token_type": serializers.CharField(help_text='Always "Bearer".'),
        "expires_in": serializers.IntegerField(),
    },
)


class TokenView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema_serializer(component_name="TokenRequest")
    class Input(serializers.Serializer):
        email = SignInEmail(max_length=254)
        password = Secret(max_length=128, trim_whitespace=False)

    @extend_schema(
        request=Input,
        responses={
            200: TokenOutput,
            401: problem_answer(
                "The email or password is wrong.",
                InvalidCredentials("The email or password is wrong."),
            ),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary="Obtain tokens",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"]
        with limits.sign_in(account=email, address=client_address(request)):
            tokens = commands.customer_authenticate(**data.validated_data)
        return Response(tokens)


class TokenRefreshView(APIView):
    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema_serializer(component_name="TokenRefresh")
    class Input(serializers.Serializer):
        refresh = Text(max_length=4096)

    @extend_schema(
        request=Input,
        responses={
            200: inline_serializer(
                "RefreshedTokens",
                {"access": serializers.CharField(), "refresh": serializers.CharField()},
            ),
            401: problem_answer(
                "The refresh token is invalid, expired or no longer valid; "
                "`refresh-token-reused` when it was used before (the sign-in is revoked).",
                InvalidCredentials("The refresh token is no longer valid."),
                InvalidCredentials(
                    "The refresh token was already used: every token of this sign-in is "
                    "revoked; sign in again.",
                    code="refresh-token-reused",
                ),
            ),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary="Rotate tokens",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        with limits.refresh(address=client_address(request)):
            tokens = commands.customer_refresh_tokens(**data.validated_data)
        return Response(tokens)


class MeView(APIView):
    permission_classes = (IsCustomer,)
    delete_has_body = True  # the password, asked again (cleave.openapi.AutoSchema)

    @extend_schema_serializer(component_name="CustomerUpdate")
    class Changes(serializers.Serializer):
        name = Text(max_length=200, required=False)
        email = CustomerEmail(max_length=254, required=False)
        # asked again before the email changes: a session alone must not take the account
        current_password = Secret(max_length=128, trim_whitespace=False, required=False)

        def validate(self, attrs):
            if not attrs.keys() & {"name", "email"}:
                raise serializers.ValidationError("Give `name`, `email` or both.")
            if "email" in attrs and "current_password" not in attrs:
                raise serializers.ValidationError(
                    {"current_password": ["Required to change the email address."]}
                )
            return attrs

    @extend_schema_serializer(component_name="CustomerDeletion")
    class Deletion(serializers.Serializer):
        password = Secret(max_length=128, trim_whitespace=False)

    @extend_schema(
        responses={
            200: CustomerOutput,
            404: problem_answer(
                "The customer no longer exists.",
                NotFound("No customer 5e0c1a2b-3c4d-4e5f-9a8b-7c6d5e4f3a2b."),
            ),
        },
        summary="The authenticated customer",
    )
    def get(self, request):
        customer = queries.customer_get(customer_id=request.user.id)
        return Response(CustomerOutput(customer).data)

    @extend_schema(
        request=Changes,
        responses={
            200: CustomerOutput,
            403: problem_answer(
                "The current password is wrong (`wrong-password`).", WRONG_PASSWORD
            ),
            409: problem_answer("Another customer has this email (`email-taken`).", EMAIL_TAKEN),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary=(
            "Change my name, or my email with my current password (the old address is told "
            "and stays reserved until the new one is verified)"
        ),
    )
    def patch(self, request):
        data = self.Changes(data=request.data)
        data.is_valid(raise_exception=True)
        changes = data.validated_data
        # a wrong password counts like a failed sign-in; a rename asks none
        guard = (
            limits.own_password(customer_id=request.user.id, address=client_address(request))
            if "current_password" in changes
            else nullcontext()
        )
        with guard:
            customer = commands.customer_update(customer_id=request.user.id, **changes)
        return Response(CustomerOutput(customer).data)

    @extend_schema(
        request=Deletion,
        responses={
            204: None,
            403: problem_answer(
                "The password is wrong (`wrong-password`).",
                WrongPassword("The password is wrong."),
            ),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary="Delete my account (every context forgets me; orders keep anonymous totals)",
    )
    def delete(self, request):
        data = self.Deletion(data=request.data)
        data.is_valid(raise_exception=True)
        with limits.own_password(customer_id=request.user.id, address=client_address(request)):
            commands.customer_delete(customer_id=request.user.id, **data.validated_data)
        return Response(status=status.HTTP_204_NO_CONTENT)


class PasswordView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema_serializer(component_name="PasswordChange")
    class Input(serializers.Serializer):
        current_password = Secret(max_length=128, trim_whitespace=False)
        new_password = Secret(min_length=8, max_length=128, trim_whitespace=False)

    @extend_schema(
        request=Input,
        responses={
            200: TokenOutput,
            403: problem_answer(
                "The current password is wrong (`wrong-password`).", WRONG_PASSWORD
            ),
            429: problem_answer(TOO_MANY, SIGN_IN_REFUSED),
        },
        summary="Change my password (other sessions end; a new token pair for this one)",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        customer = queries.customer_get(customer_id=request.user.id)
        check_password_rules(data.validated_data["new_password"], customer, "new_password")
        with limits.own_password(customer_id=customer.id, address=client_address(request)):
            tokens = commands.customer_change_password(
                customer_id=customer.id, **data.validated_data
            )
        return Response(tokens)


class VerifyView(APIView):
    """The token is the proof: no login needed (it may be opened on another device)."""

    permission_classes = (AllowAny,)
    authentication_classes = ()

    @extend_schema_serializer(component_name="EmailVerification")
    class Input(serializers.Serializer):
        token = Secret(max_length=1024)

    @extend_schema(
        request=Input,
        responses={
            200: CustomerOutput,
            400: problem_answer(
                "The token is not valid (`verification-token-invalid`) or has expired "
                "(`verification-token-expired`).",
                InvalidVerificationToken("The verification token is not valid."),
                InvalidVerificationToken(
                    "The verification token has expired; ask for a new one "
                    "(POST /api/users/verify/resend).",
                    code="verification-token-expired",
                ),
            ),
        },
        summary="Verify my email address with the token mailed to it",
    )
    def post(self, request):
        data = self.Input(data=request.data)
        data.is_valid(raise_exception=True)
        customer = commands.customer_verify(**data.validated_data)
        return Response(CustomerOutput(customer).data)


class VerifyResendView(APIView):
    permission_classes = (IsCustomer,)

    @extend_schema(
        request=None,
        responses={
            202: inline_serializer("VerificationSent", {"sent": serializers.BooleanField()}),
            429: problem_answer(
                "Asked too often (`CLEAVE_THROTTLE_VERIFY_RESEND`, 3 an hour).",
                Throttled(limits.MAIL_REFUSED, retry_after=1200),
            ),
        },
        summary="Mail me a new verification token (`sent` false: already verified)",
    )
    def post(self, request):
        with limits.verification_mail(customer_id=request.user.id):
            sent = commands.customer_resend_verification(customer_id=request.user.id)
        return Response({"sent": sent}, status=status.HTTP_202_ACCEPTED)


class CustomerDetailView(APIView):
    """Service endpoint: another context checks a customer (`users:read`)."""

    permission_classes = (ServicePermission,)
    operation = users.CUSTOMER_GET
    staff_permission = "users.view_customer"

    @extend_schema(responses={200: CustomerOutput}, summary="A customer (service)")
    def get(self, request, customer_id):
        customer = queries.customer_get(customer_id=customer_id)
        return Response(CustomerOutput(customer).data)


class CustomerListView(APIView):
    """Service endpoint: the seed's customer filter (`users:read`, or staff)."""

    permission_classes = (ServicePermission,)
    operation = users.CUSTOMER_LIST
    staff_permission = "users.view_customer"

    class Filters(serializers.Serializer):
        email = Text(max_length=254, required=False)
        status = serializers.ChoiceField(choices=Customer.Status.choices, required=False)
        limit = QueryNumber(min_value=1, max_value=queries.MAX_LIMIT, required=False)
        offset = QueryNumber(min_value=0, max_value=10**9, required=False)

    Page = inline_serializer(
        "CustomerPage",
        {
            "count": serializers.IntegerField(),
            "limit": serializers.IntegerField(),
            "offset": serializers.IntegerField(),
            "results": CustomerOutput(many=True),
        },
    )

    @extend_schema(
        parameters=[Filters],
        responses={200: Page},
        summary="Customers by email (exact, or a prefix with `*`) and status (service)",
        operation_id="users_customers_list",
    )
    def get(self, request):
        # a plain dict: DRF reads a blank value of a QueryDict as absent
        filters = self.Filters(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        page = queries.customer_list(**filters.validated_data)
        return Response(
            {
                "count": page.count,
                "limit": page.limit,
                "offset": page.offset,
                "results": CustomerOutput(page.results, many=True).data,
            }
        )
