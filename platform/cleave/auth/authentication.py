"""
DRF authentication: `Authorization: Bearer <access token>` (a customer,
refused when revoked in the serving context's alias) and `X-Service-Token`
(a calling service).
"""

from __future__ import annotations

import uuid

from rest_framework import authentication, exceptions

from cleave.auth import revocations
from cleave.auth.tokens import (
    SERVICE_TOKEN_HEADER,
    CustomerPrincipal,
    TokenError,
    decode_customer_token,
    decode_service_token,
)
from cleave.core.registry import context_for_module

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
