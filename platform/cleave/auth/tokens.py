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
refuses every token issued before it (`cleave.auth.revocations`, which compares
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
