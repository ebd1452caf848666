"""
Customer and service tokens, and the DRF authentication and permission classes.

Customers authenticate with short-lived access JWTs and rotate them with refresh
JWTs (`CLEAVE_JWT_SECRET`). Services, and operators' scripts, authenticate with
service JWTs (`X-Service-Token`, `CLEAVE_SERVICE_JWT_SECRET`) that carry a
service name and a list of permissions such as `inventory:write`. Both are
HS256-signed with PyJWT and checked for issuer, audience, expiry and type;
their times must be JSON numbers.

A customer token's `iat` is a Unix time in milliseconds (a NumericDate with
three decimals, which RFC 7519 allows), not whole seconds: a password change
refuses every token issued before it (`cleave.revocations`, which compares
`iat < revoked_at`) and hands out a new pair issued at that very instant,
so the pair works at once while a token from a moment earlier, even in the
same second, does not. The instant is held to the millisecond because that
is what event payloads carry (Django's JSON encoder), and every context
must compare against the same one.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt
from django.conf import settings
from rest_framework import authentication, exceptions, permissions

from cleave import revocations
from cleave.contexts import context_for_module

CUSTOMER_AUDIENCE = "cleave:customer"
SERVICE_AUDIENCE = "cleave:service"
ALGORITHM = "HS256"
SERVICE_TOKEN_HEADER = "X-Service-Token"
_TIME_CLAIMS = ("exp", "iat", "nbf")


@dataclass(frozen=True)
class CustomerPrincipal:
    """The customer a request acts for; `id` is the users context's customer id."""

    id: uuid.UUID
    email: str = ""
    is_authenticated: bool = True
    is_staff: bool = False
    is_customer: bool = True
    is_service: bool = False

    @property
    def pk(self) -> uuid.UUID:
        return self.id


@dataclass(frozen=True)
class ServicePrincipal:
    """A calling service (or an operator's script) and what it may do."""

    name: str
    permissions: frozenset[str] = field(default_factory=frozenset)
    is_authenticated: bool = True
    is_staff: bool = False
    is_customer: bool = False
    is_service: bool = True

    @property
    def pk(self) -> str:
        return f"service:{self.name}"

    def has(self, permission: str) -> bool:
        context, _, action = permission.partition(":")
        return (
            permission in self.permissions
            or f"{context}:*" in self.permissions
            or "*" in self.permissions
            or (action == "read" and f"{context}:write" in self.permissions)
        )


class TokenError(Exception):
    """A token is malformed, forged, expired or of the wrong type."""


def _now() -> int:
    return int(time.time())


def token_instant(at: datetime | None = None) -> datetime:
    """
    `at` (now) cut to the millisecond: the instant a password change revokes
    tokens at, and issues its new pair at (see the module's docstring).
    """
    at = at or datetime.now(tz=UTC)
    return at.replace(microsecond=at.microsecond - at.microsecond % 1000)


def _encode(claims: dict[str, Any], secret: str) -> str:
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def _decode(token: str, secret: str, audience: str, token_type: str) -> dict[str, Any]:
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=audience,
            issuer=settings.CLEAVE_JWT_ISSUER,
            options={"require": ["exp", "iat", "sub", "typ", "jti"]},
        )
    except jwt.ExpiredSignatureError as exc:
        raise TokenError("The token has expired.") from exc
    except jwt.PyJWTError as exc:
        raise TokenError("The token is invalid.") from exc
    # PyJWT compares `int(claims["exp"])`, so a numeric string ("9999999999")
    # passes; RFC 7519 says a NumericDate is a JSON number.
    for name in _TIME_CLAIMS:
        value = claims.get(name)
        if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
            raise TokenError("The token is invalid.")
    if claims.get("typ") != token_type:
        raise TokenError(f"A {token_type} token is required.")
    return claims


# --- customers ----------------------------------------------------------------


def issue_customer_tokens(
    customer_id: uuid.UUID | str,
    *,
    email: str = "",
    refresh_id: str | None = None,
    family: str | None = None,
    issued_at: datetime | None = None,
) -> dict[str, Any]:
    """
    Return a fresh access and refresh token pair for a customer. The issuer
    that keeps track of refresh tokens (the users context: rotation, reuse
    detection) names the refresh token's id and its family (claim `fam`).
    `issued_at` (now) becomes `iat`, to the millisecond.
    """
    now = token_instant(issued_at).timestamp()
    base = {"iss": settings.CLEAVE_JWT_ISSUER, "aud": CUSTOMER_AUDIENCE, "sub": str(customer_id)}
    access_ttl = settings.CLEAVE_ACCESS_TOKEN_TTL
    access = _encode(
        {
            **base,
            "typ": "access",
            "email": email,
            "iat": now,
            "exp": now + access_ttl,
            "jti": uuid.uuid4().hex,
        },
        settings.CLEAVE_JWT_SECRET,
    )
    refresh = _encode(
        {
            **base,
            "typ": "refresh",
            "iat": now,
            "exp": now + settings.CLEAVE_REFRESH_TOKEN_TTL,
            "jti": refresh_id or uuid.uuid4().hex,
            **({"fam": family} if family else {}),
        },
        settings.CLEAVE_JWT_SECRET,
    )
    return {"access": access, "refresh": refresh, "token_type": "Bearer", "expires_in": access_ttl}


def decode_customer_token(token: str, *, token_type: str = "access") -> dict[str, Any]:
    """Verify a customer token and return its claims; raise TokenError otherwise."""
    return _decode(token, settings.CLEAVE_JWT_SECRET, CUSTOMER_AUDIENCE, token_type)


# --- services -----------------------------------------------------------------


def issue_service_token(
    service: str, permissions: list[str] | tuple[str, ...], *, ttl: int | None = None
) -> str:
    """Return a service JWT for `service` carrying `permissions`."""
    now = _now()
    ttl = settings.CLEAVE_SERVICE_TOKEN_TTL if ttl is None else ttl
    claims = {
        "iss": settings.CLEAVE_JWT_ISSUER,
        "aud": SERVICE_AUDIENCE,
        "sub": service,
        "typ": "service",
        "perms": sorted(set(permissions)),
        "iat": now,
        "exp": now + ttl,
        "jti": uuid.uuid4().hex,
    }
    return _encode(claims, settings.CLEAVE_SERVICE_JWT_SECRET)


# Tokens that verified, by (token, secret, issuer): a service calls another
# many times with one token, and verifying the signature each time costs more
# than the rest of a small call. Only the expiry is checked again on a hit.
_verified: dict[tuple[str, str, str, int], tuple[ServicePrincipal, int]] = {}
_CACHE_MAX = 1024


def decode_service_token(token: str) -> ServicePrincipal:
    """
    Verify a service token and return who it is for; TokenError otherwise,
    also when it was made to live longer (`exp - iat`) than
    `CLEAVE_SERVICE_TOKEN_MAX_TTL`: a service token cannot be revoked on its
    own, so its issuer may not choose to make one live for years.
    """
    max_ttl = settings.CLEAVE_SERVICE_TOKEN_MAX_TTL
    key = (token, settings.CLEAVE_SERVICE_JWT_SECRET, settings.CLEAVE_JWT_ISSUER, max_ttl)
    hit = _verified.get(key)
    if hit is not None and hit[1] > _now():
        return hit[0]
    claims = _decode(token, settings.CLEAVE_SERVICE_JWT_SECRET, SERVICE_AUDIENCE, "service")
    if claims["exp"] - claims["iat"] > max_ttl:
        raise TokenError(
            f"The token lives longer than the {max_ttl} seconds this deployment accepts."
        )
    perms = claims.get("perms") or []
    if not isinstance(perms, list) or not all(isinstance(p, str) for p in perms):
        raise TokenError("The token's permissions are malformed.")
    principal = ServicePrincipal(name=str(claims["sub"]), permissions=frozenset(perms))
    if len(_verified) >= _CACHE_MAX:
        _verified.clear()
    _verified[key] = (principal, int(claims["exp"]))
    return principal


_issued: dict[tuple, tuple[str, int]] = {}


def service_token_for(service: str, permissions: list[str] | tuple[str, ...]) -> str:
    """
    A service JWT for `service` with `permissions`, reused while it has more
    than a quarter of its lifetime left (a caller needs not mint one per call).
    """
    ttl = settings.CLEAVE_SERVICE_TOKEN_TTL
    key = (
        service,
        tuple(sorted(set(permissions))),
        settings.CLEAVE_SERVICE_JWT_SECRET,
        settings.CLEAVE_JWT_ISSUER,
        ttl,
    )
    now = _now()
    hit = _issued.get(key)
    if hit is not None and hit[1] - now > ttl / 4:
        return hit[0]
    token = issue_service_token(service, permissions, ttl=ttl)
    if len(_issued) >= _CACHE_MAX:
        _issued.clear()
    _issued[key] = (token, now + ttl)
    return token


# --- DRF authentication ----------------------------------------------------------


class CustomerAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <access token>` → CustomerPrincipal."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("The Authorization header is malformed.")
        try:
            claims = decode_customer_token(header[1].decode("ascii"))
            customer_id = uuid.UUID(claims["sub"])
        except (TokenError, UnicodeDecodeError, ValueError) as exc:
            raise exceptions.AuthenticationFailed(str(exc) or "The token is invalid.") from exc
        alias = _alias_of(request)
        if alias is not None and revocations.is_revoked(customer_id, claims["iat"], alias=alias):
            raise exceptions.AuthenticationFailed("The token was revoked.")
        return CustomerPrincipal(id=customer_id, email=claims.get("email", "")), claims

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'


def _alias_of(request) -> str | None:
    """The database alias of the context whose view serves `request` (None: no context's)."""
    match = getattr(getattr(request, "_request", request), "resolver_match", None)
    view = getattr(match, "func", None)
    module = getattr(getattr(view, "view_class", view), "__module__", None)
    cfg = context_for_module(module) if module else None
    return cfg.database if cfg is not None else None


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    """`X-Service-Token: <JWT>` → ServicePrincipal."""

    def authenticate(self, request):
        token = request.headers.get(SERVICE_TOKEN_HEADER)
        if not token:
            return None
        try:
            principal = decode_service_token(token)
        except TokenError as exc:
            raise exceptions.AuthenticationFailed(str(exc)) from exc
        return principal, None


# --- DRF permissions ---------------------------------------------------------------


class IsCustomer(permissions.BasePermission):
    """The request is made by an authenticated customer."""

    message = "A customer access token is required."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_customer", False))


def _is_staff(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_staff", False)
        and getattr(user, "is_active", True)
    )


class ServicePermission(permissions.BasePermission):
    """
    The request carries a service token holding the view's `required_permission`.

    Views set `required_permission = "inventory:write"`. A view whose reads
    and writes differ sets `read_permission` and `write_permission` instead:
    safe methods need the first, the others the second.

    Operators: with `staff_permission = "<app>.view_<model>"` a staff session
    from the admin is admitted too (to reads only, for a view with read and
    write permissions), if the operator holds that Django model permission,
    as the admin would ask for the same rows. The staff flag alone opens
    nothing; a superuser holds every permission.
    """

    message = "A service token with the required permission is required."

    @staticmethod
    def requirement(view, method: str) -> tuple[str, str | None]:
        """
        The permission a service token needs for `method` on `view`, and the
        Django permission that admits an operator instead (None: none does).
        """
        reading = method.upper() in permissions.SAFE_METHODS
        staff = getattr(view, "staff_permission", None)
        if getattr(view, "read_permission", None) and getattr(view, "write_permission", None):
            required = view.read_permission if reading else view.write_permission
            staff = staff if reading else None
        else:
            required = getattr(view, "required_permission", None)
        if not required:
            raise NotImplementedError(f"{type(view).__name__} must set .required_permission")
        return required, staff

    def has_permission(self, request, view) -> bool:
        required, staff_permission = self.requirement(view, request.method)
        user = request.user
        if getattr(user, "is_service", False):
            return user.has(required)
        return bool(staff_permission and _is_staff(user) and user.has_perm(staff_permission))
