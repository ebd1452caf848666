"""OpenAPI (drf-spectacular) support for the platform's authentication and views."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema


class AutoSchema(SpectacularAutoSchema):
    """Name nested serializers after their view (`RegisterView.Input` → `RegisterViewInput`)."""

    def get_serializer_name(self, serializer, direction):
        name = super().get_serializer_name(serializer, direction)
        qualname = type(serializer).__qualname__
        if "." in qualname and "<locals>" not in qualname and name == type(serializer).__name__:
            return qualname.replace(".", "")
        return name


class CustomerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "cleave.security.CustomerAuthentication"
    name = "customerBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class ServiceTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "cleave.security.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Service-Token"}
