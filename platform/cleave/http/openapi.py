"""
OpenAPI (drf-spectacular) support for the platform's authentication and views.

Every operation documents the problem details it can answer with, so that a
client generated from the schema knows them: the ones the view's shape implies
(400 for a body or parameters other than `page`, 401 when it authenticates, 403 when it needs a
kind of principal, 404 for a path id or a page, 415 for a body, 429 when
throttled), plus those the view declares with `problem_answer()`:

    @extend_schema(responses={201: CustomerOutput, 409: problem_answer("The email is taken.")})

Each operation's `security` names only the credentials its permission admits.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.permissions import AllowAny

from cleave.auth.permissions import IsCustomer, ServicePermission
from cleave.calls.client import balancer
from cleave.http.problems import PROBLEM_CONTENT_TYPE


class Problem(serializers.Serializer):
    """RFC 9457 problem details, as every error of this API is answered."""

    type = serializers.URLField(help_text="What kind of problem; its last part is a stable code.")
    title = serializers.CharField()
    status = serializers.IntegerField(min_value=400, max_value=599)
    detail = serializers.CharField()
    errors = serializers.DictField(
        child=serializers.ListField(child=serializers.CharField()),
        required=False,
        help_text="For invalid input: messages per field.",
    )


def problem_answer(description: str) -> OpenApiResponse:
    """An error answer a view declares in `extend_schema(responses=...)`."""
    return OpenApiResponse(Problem, description=description)


class AutoSchema(SpectacularAutoSchema):
    def _get_request_body(self, direction="request"):
        """
        drf-spectacular documents bodies of PUT, PATCH and POST only; a view
        whose DELETE takes one (`delete_has_body = True`: `DELETE
        /api/users/me` asks for the password) has it documented too.
        """
        if self.method == "DELETE" and getattr(self.view, "delete_has_body", False):
            self.method = "POST"
            try:
                return super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        return super()._get_request_body(direction)

    def get_serializer_name(self, serializer, direction):
        """Name nested serializers after their view (`RegisterView.Input` → `RegisterViewInput`)."""
        name = super().get_serializer_name(serializer, direction)
        qualname = type(serializer).__qualname__
        if "." in qualname and "<locals>" not in qualname and name == type(serializer).__name__:
            return qualname.replace(".", "")
        return name

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        for code, response in responses.items():  # declared with problem_answer(): problem+json
            content = response.get("content") or {}
            if code.isdigit() and int(code) >= 400 and "application/json" in content:
                content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
        for code, description in self._implied_problems(operation).items():
            responses.setdefault(
                str(code),
                self._get_response_for_code(
                    problem_answer(description), str(code), [PROBLEM_CONTENT_TYPE], "response"
                ),
            )
        operation["responses"] = dict(sorted(responses.items()))
        return operation

    def _implied_problems(self, operation: dict[str, Any]) -> dict[int, str]:
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        problems: dict[int, str] = {}
        if has_body or any(
            p["in"] in ("query", "header") and p["name"] != "page" for p in parameters
        ):
            problems[400] = "Invalid input: `errors` names each field and what is wrong with it."
        if self.view.get_authenticators():
            problems[401] = "Not authenticated: credentials missing, malformed, expired or forged."
        if any(not isinstance(p, AllowAny) for p in self.view.get_permissions()):
            problems[403] = "Not allowed: these credentials do not admit this operation."
        paginated = self.method == "GET" and self._is_list_view() and self._get_paginator()
        if paginated or any(p["in"] == "path" for p in parameters):
            problems[404] = "Not found" + (": no such page." if paginated else ".")
        if has_body:
            problems[415] = "Unsupported media type: the body must be JSON."
        if self.view.get_throttles():
            problems[429] = "Too many requests: wait for `Retry-After` seconds."
        return problems

    def get_auth(self):
        """Only the credentials the view's permission admits (all, for a public view)."""
        auths = super().get_auth()
        caller = self._caller()
        if caller is None:
            return auths
        admitted, _requirement = caller
        return [auth for auth in auths if auth and set(auth) <= admitted]

    def get_description(self):
        """The view's description, and what it requires of the caller."""
        description = super().get_description()
        caller = self._caller()
        if caller is None:
            return description
        _admitted, requirement = caller
        return f"{description}\n\n{requirement}".strip()

    def _caller(self) -> tuple[set[str], str] | None:
        """The security schemes a non-public view admits, and its requirement in words."""
        for permission in self.view.get_permissions():
            if isinstance(permission, IsCustomer):
                return (
                    {CustomerAuthenticationScheme.name},
                    "Requires a customer access token (`Authorization: Bearer`).",
                )
            if isinstance(permission, ServicePermission):
                required, staff_permission = permission.requirement(self.view, self.method)
                schemes = {ServiceTokenAuthenticationScheme.name}
                staff = ""
                if staff_permission:
                    schemes.add("cookieAuth")
                    staff = (
                        ", or a staff session from the admin with the "
                        f"`{staff_permission}` permission"
                    )
                return (
                    schemes,
                    f"Requires a service token (`X-Service-Token`) with `{required}`{staff}.",
                )
        return None


class CustomerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "cleave.auth.authentication.CustomerAuthentication"
    name = "customerBearer"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}


class ServiceTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "cleave.auth.authentication.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-Service-Token"}


# --- one document for a split deployment ---------------------------------------------

# Asked with this header, a process describes only what it serves itself (the
# merge below asks other groups that way, so they do not ask each other).
LOCAL_SCOPE_HEADER = "X-Cleave-Schema-Scope"


def include_remote_contexts(result, generator, request, public):
    """
    drf-spectacular post-processing hook: in a split deployment, add the
    operations of the contexts other processes serve, read from their own
    `/api/schema/`, so that `/api/schema/` and `/api/docs/` behind the gateway
    describe the whole API as in the monolith. A group that cannot be reached
    is left out, and the document's description says which.
    """
    remote = [
        label for label in settings.CLEAVE_ALL_CONTEXTS if label not in settings.CLEAVE_CONTEXTS
    ]
    if not remote or request is None or request.headers.get(LOCAL_SCOPE_HEADER) == "local":
        return result
    documents: dict[str, dict] = {}
    missing: list[str] = []
    for label in remote:
        try:
            base = balancer().choose(label)
            if base not in documents:
                answer = requests.get(
                    f"{base}/api/schema/",
                    params={"format": "json"},
                    headers={LOCAL_SCOPE_HEADER: "local"},
                    timeout=settings.CLEAVE_BREAKER_CALL_TIMEOUT,
                )
                answer.raise_for_status()
                documents[base] = answer.json()
        except Exception as exc:  # a group that is down leaves a gap, not an error
            logging.getLogger(__name__).warning("OpenAPI of %s not included: %s", label, exc)
            missing.append(label)
            continue
        document = documents[base]
        prefix = f"/api/{label}/"
        for path, item in document.get("paths", {}).items():
            if path.startswith(prefix):
                result.setdefault("paths", {})[path] = item
        for kind, entries in document.get("components", {}).items():
            section = result.setdefault("components", {}).setdefault(kind, {})
            for name, entry in entries.items():
                section.setdefault(name, entry)
    result["paths"] = dict(sorted(result.get("paths", {}).items()))
    if missing:
        info = result.setdefault("info", {})
        note = f"Not included (unavailable): {', '.join(missing)}."
        info["description"] = f"{info.get('description', '')}\n\n{note}".strip()
    return result
