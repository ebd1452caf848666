"""
OpenAPI (drf-spectacular) support for the platform's authentication and views.

What a client generated from the document (openapi-python-client) reads:

- Names. A component is named after what it carries, as a client would call
  it: an answer after its resource (`Order`, `CartItem`, `Charge`), a request
  after what it asks for (`CustomerRegistration`, `TokenRequest`). Every
  serializer the API documents says its name (`@extend_schema_serializer(
  component_name=...)`, `inline_serializer(name, ...)`, or a class named after
  its resource, `Problem`); the answers and the
  requests are different serializers here, so drf-spectacular's `Request` suffix
  and `Patched` prefix are not added (a PATCH view validates its serializer as
  declared, never partially).
- Closed sets. A ChoiceField whose choices are a `TextChoices` class's (the
  contract's `CancellationReason`, a model's `Order.Status`) is the enum
  component named after that class (`CancellationReason`, `OrderStatus`),
  wherever it appears: answers, requests and query parameters.
- Errors. Every operation documents the problem details it can answer with:
  the ones the view's shape implies (400 for a body or parameters other than
  `page`, 401 when it authenticates, 403 when it needs a kind of principal,
  404 for a path id or a page, 415 for a body, 429 when throttled), plus those
  the view declares with `problem_answer()`, each with an example of every
  problem it stands for, rendered from the exception the view raises by the
  functions that answer it (`cleave.http.problems`):

      @extend_schema(responses={
          201: CustomerOutput,
          409: problem_answer("The email is taken.", Conflict("...", code="email-taken")),
      })

- Credentials. Each operation's `security` names only the credentials its
  permission admits; a public one has `security: []`.
"""

from __future__ import annotations

import inspect
import logging
import weakref
from types import SimpleNamespace
from typing import Any

import requests
from django.conf import settings
from django.db.models import Choices
from drf_spectacular.drainage import error, warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import (
    ResolvedComponent,
    build_choice_description_list,
    build_examples_list,
    safe_ref,
)
from drf_spectacular.settings import spectacular_settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import exceptions, mixins, serializers
from rest_framework.permissions import AllowAny

from cleave.auth.permissions import IsCustomer, ServicePermission
from cleave.calls.client import balancer
from cleave.core.errors import ApplicationError, ServiceError
from cleave.http.conditional import CACHE_CONTROL, RevisedRead
from cleave.http.problems import (
    PROBLEM_CONTENT_TYPE,
    dependency_problem,
    drf_problem,
    refusal_problem,
)

IF_NONE_MATCH = OpenApiParameter(
    "If-None-Match",
    str,
    OpenApiParameter.HEADER,
    description="The `ETag` of an answer the client holds: 304 without a body while it is current.",
)
# parameters no answer refuses with a 400: a page past the end is a 404, and an
# `If-None-Match` that names no current tag just gets the answer
NEVER_REFUSED = {"page", IF_NONE_MATCH.name}
REVISED_HEADERS = {
    "ETag": {
        "schema": {"type": "string"},
        "description": "Changes with every write to what the answer shows.",
    },
    "Cache-Control": {
        "schema": {"type": "string"},
        "description": f"`{CACHE_CONTROL}`: any cache may keep the answer, but must ask again "
        "(`If-None-Match`).",
    },
}


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


def problem_body(exc: Exception) -> dict[str, Any]:
    """
    The problem details the API answers `exc` with: a refusal of the domain
    (`cleave.core.errors`), another context's failure, or a DRF exception.
    """
    if isinstance(exc, ApplicationError):
        return refusal_problem(exc)
    if isinstance(exc, ServiceError):
        return dependency_problem(exc)
    if isinstance(exc, exceptions.APIException):
        return drf_problem(exc, exc.status_code)
    raise TypeError(f"{exc!r} is not answered with problem details")


def problem_example(exc: Exception) -> OpenApiExample:
    """An example answer: `exc` as the API answers it, named by its problem's code."""
    body = problem_body(exc)
    code = body["type"].rsplit("/", 1)[-1]
    # drf-spectacular camelizes the name into the example's key: `out_of_stock` → `OutOfStock`
    return OpenApiExample(code.replace("-", "_"), value=body, summary=code, response_only=True)


def problem_answer(description: str, *examples: Exception) -> OpenApiResponse:
    """
    An error answer a view declares in `extend_schema(responses=...)`, with an
    example of each problem it stands for: the exception the view raises (an
    `ApplicationError`, a `ServiceError` or a DRF exception), rendered as the API
    renders it. An example whose status is not the answer's is refused.
    """
    return OpenApiResponse(
        Problem, description=description, examples=[problem_example(exc) for exc in examples]
    )


def closed_set(field: serializers.Field) -> type[Choices] | None:
    """
    The `TextChoices` (or other `Choices`) class whose values and labels a
    ChoiceField takes, if exactly one has them; None for a set of its own.
    """
    if not isinstance(field, serializers.ChoiceField) or isinstance(
        field, serializers.MultipleChoiceField
    ):
        return None
    taken = [
        (value, str(label)) for value, label in field.choices.items() if value not in ("", None)
    ]
    found = {
        cls
        for cls in _subclasses(Choices)
        if [(value, str(label)) for value, label in cls.choices] == taken
    }
    if len(found) > 1:
        names = ", ".join(sorted(enum_name(cls) for cls in found))
        warn(f"the choices of {field.field_name!r} are those of several classes ({names})")
    return found.pop() if len(found) == 1 else None


def enum_name(choices: type[Choices]) -> str:
    """The enum component of a closed set: its class's name (`Order.Status` → `OrderStatus`)."""
    return choices.__qualname__.replace(".", "")


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


# What a serializer's class name may say of its role, never a component's name.
ROLE_SUFFIXES = ("Input", "Output")

# The names drf-spectacular gives the blank and null choices of an enum
# (its `postprocess_schema_enums`), kept so the document reads the same.
BLANK_ENUM = "BlankEnum"
NULL_ENUM = "NullEnum"


# The direction each component name was given for, per document being generated.
_directions: weakref.WeakKeyDictionary[Any, dict[str, str]] = weakref.WeakKeyDictionary()


class AutoSchema(SpectacularAutoSchema):
    def get_override_parameters(self):
        """A conditional read (`cleave.http.conditional`) takes `If-None-Match`."""
        parameters = super().get_override_parameters()
        if self.method == "GET" and isinstance(self.view, RevisedRead):
            parameters = [*parameters, IF_NONE_MATCH]
        return parameters

    def _get_response_bodies(self, direction="response"):
        """A conditional read's 200 carries `ETag` and `Cache-Control`; it may answer 304."""
        responses = super()._get_response_bodies(direction)
        if self.method == "GET" and isinstance(self.view, RevisedRead) and "200" in responses:
            responses["200"].setdefault("headers", {}).update(REVISED_HEADERS)
            responses["304"] = {
                "description": "Not modified: the `ETag` named in `If-None-Match` is current.",
                "headers": REVISED_HEADERS,
            }
        return responses

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

    def _get_request_for_media_type(self, serializer, direction="request"):
        """
        A PATCH view here validates its serializer as declared (its optional
        fields say `required=False`); drf-spectacular would document it as DRF's
        `partial_update` validates, every field optional, under a `Patched` name.
        """
        if self.method == "PATCH" and not isinstance(self.view, mixins.UpdateModelMixin):
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(serializer, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def get_serializer_name(self, serializer, direction):
        """
        The name of a serializer that does not declare one: its class's, which
        should then be its resource's (`Problem`, `inline_serializer("TokenPair",
        ...)`). A nested class (`RegisterView.Input`) or a role (`CustomerOutput`)
        is named after its class path, with a warning.
        """
        cls = type(serializer)
        if "<locals>" in cls.__qualname__:
            return cls.__name__
        if "." in cls.__qualname__ or cls.__name__.endswith(ROLE_SUFFIXES):
            warn(
                f"{cls.__qualname__} does not name its component: name it after the resource "
                "it carries (`@extend_schema_serializer(component_name=...)`)"
            )
        return cls.__qualname__.replace(".", "")

    def _get_serializer_name(self, serializer, direction, bypass_extensions=False):
        """The serializer's own name: no `Request` suffix for a request (see the module)."""
        name = super()._get_serializer_name(serializer, direction, bypass_extensions)
        if direction == "request" and spectacular_settings.COMPONENT_SPLIT_REQUEST:
            name = name.removesuffix("Request")
        # one serializer for both directions would make one component of two schemas
        seen = _directions.setdefault(self.registry, {})
        if seen.setdefault(name, direction) != direction:
            warn(
                f"{name} is both a request and an answer: give the request a serializer "
                "(and a name) of its own"
            )
        return name

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        """A closed set's field refers to its enum component (see the module)."""
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        choices = closed_set(field)
        if schema is None or choices is None or "enum" not in schema:
            return schema
        return self._enum_reference(field, choices, schema)

    def _enum_reference(
        self, field: serializers.ChoiceField, choices: type[Choices], schema: dict[str, Any]
    ) -> dict[str, Any]:
        """
        `schema` (an inline enum, as drf-spectacular maps a ChoiceField) as a
        reference to the enum component of `choices`, and to `BlankEnum` and
        `NullEnum` when the field also takes "" or null, as drf-spectacular's
        `postprocess_schema_enums` does with its own names.
        """
        listed = ""
        if spectacular_settings.ENUM_GENERATE_CHOICE_DESCRIPTION:
            listed = build_choice_description_list(field.choices.items())
        own_doc = choices.__dict__.get("__doc__")
        enum = {
            "type": schema.get("type", "string"),
            "enum": [value for value in schema["enum"] if value not in ("", None)],
            "description": "\n\n".join(
                part for part in (inspect.cleandoc(own_doc) if own_doc else "", listed) if part
            ),
        }
        refs = [self._register(enum_name(choices), enum, choices)]
        if "" in schema["enum"]:
            refs.append(self._register(BLANK_ENUM, {"enum": [""]}, BLANK_ENUM))
        if None in schema["enum"]:
            refs.append(self._register(NULL_ENUM, {"enum": [None]}, NULL_ENUM))
        rest = {k: v for k, v in schema.items() if k not in ("type", "enum", "x-spec-enum-id")}
        description = rest.pop("description", "").removesuffix(listed).strip()
        if description:
            rest["description"] = description
        return safe_ref({**rest, **(refs[0] if len(refs) == 1 else {"oneOf": refs})})

    def _register(self, name: str, schema: dict[str, Any], identity: Any) -> dict[str, str]:
        component = ResolvedComponent(
            name, ResolvedComponent.SCHEMA, schema=schema, object=identity
        )
        self.registry.register_on_missing(component)
        return component.ref

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        responses: dict[str, Any] = operation["responses"]
        for code, response in responses.items():  # declared with problem_answer(): problem+json
            content = response.get("content") or {}
            if code.isdigit() and int(code) >= 400 and "application/json" in content:
                content[PROBLEM_CONTENT_TYPE] = content.pop("application/json")
        for code, (description, example) in self._implied_problems(operation).items():
            declared = responses.get(str(code))
            if declared is None:
                responses[str(code)] = self._get_response_for_code(
                    problem_answer(description, example),
                    str(code),
                    [PROBLEM_CONTENT_TYPE],
                    "response",
                )
            else:
                self._add_example(declared, description, problem_example(example))
        for code, response in responses.items():
            self._check_examples(code, response)
        operation["responses"] = dict(sorted(responses.items()))
        if self._caller() is None:
            operation["security"] = []  # public: no credentials
        return operation

    def _add_example(self, response: dict[str, Any], description: str, example: OpenApiExample):
        """An implied problem of a kind the declared answer does not show yet, added to it."""
        content = (response.get("content") or {}).get(PROBLEM_CONTENT_TYPE)
        if content is None:
            return
        examples = content.setdefault("examples", {})
        shown = {e["value"]["type"] for e in examples.values() if isinstance(e.get("value"), dict)}
        if example.value["type"] in shown:
            return
        examples.update(build_examples_list([example]))
        response["description"] = f"{response.get('description', '')}\n\n{description}".strip()

    def _check_examples(self, code: str, response: dict[str, Any]) -> None:
        """Refuse (and drop) a problem example whose status is not the answer's."""
        content = (response.get("content") or {}).get(PROBLEM_CONTENT_TYPE) or {}
        examples = content.get("examples", {})
        for key, example in list(examples.items()):
            status = (example.get("value") or {}).get("status")
            if str(status) != code:
                error(
                    f"the {code} answer's example {key!r} is a {status}: declare it under {status}"
                )
                del examples[key]

    def _implied_problems(self, operation: dict[str, Any]) -> dict[int, tuple[str, Exception]]:
        """The problems the view's shape implies, each with what it says and an example."""
        parameters = operation.get("parameters", [])
        has_body = "requestBody" in operation
        problems: dict[int, tuple[str, Exception]] = {}
        if has_body or any(
            p["in"] in ("query", "header") and p["name"] not in NEVER_REFUSED for p in parameters
        ):
            problems[400] = (
                "Invalid input: `errors` names each field and what is wrong with it.",
                self._invalid_input(operation),
            )
        if self.view.get_authenticators() and self._caller() is None:
            # a public view that still reads credentials refuses only bad ones
            problems[401] = (
                "Not authenticated: the credentials sent (none are needed) are malformed, "
                "expired or forged.",
                exceptions.AuthenticationFailed("The token is invalid."),
            )
        elif self.view.get_authenticators():
            problems[401] = (
                "Not authenticated: credentials missing, malformed, expired or forged.",
                exceptions.NotAuthenticated(),
            )
        refusing = [p for p in self.view.get_permissions() if not isinstance(p, AllowAny)]
        if refusing:
            message = getattr(refusing[0], "message", None)
            problems[403] = (
                "Not allowed: these credentials do not admit this operation.",
                exceptions.PermissionDenied(message),
            )
        paginator = self._get_paginator() if self.method == "GET" and self._is_list_view() else None
        if paginator:
            problems[404] = (
                "Not found: no such page.",
                exceptions.NotFound(
                    paginator.invalid_page_message.format(page_number=2, message="no results")
                ),
            )
        elif any(p["in"] == "path" for p in parameters):
            problems[404] = ("Not found.", exceptions.NotFound())
        if has_body:
            problems[415] = (
                "Unsupported media type: the body must be JSON.",
                exceptions.UnsupportedMediaType("text/plain"),
            )
        if self.view.get_throttles():
            problems[429] = (
                "Too many requests: wait for `Retry-After` seconds.",
                exceptions.Throttled(wait=30),
            )
        return problems

    def _invalid_input(self, operation: dict[str, Any]) -> exceptions.ValidationError:
        """
        A 400 as this operation answers it: its body's first required field
        missing, else its first parameter refused (a page size as the paginator
        refuses it).
        """
        body = (operation.get("requestBody") or {}).get("content", {}).get("application/json", {})
        ref = body.get("schema", {}).get("$ref", "")
        fields: list[str] = []
        if ref:
            component = self.registry[(ref.rsplit("/", 1)[-1], ResolvedComponent.SCHEMA)]
            required = component.schema.get("required", [])
            if required:
                return exceptions.ValidationError({required[0]: ["This field is required."]})
            fields = list(component.schema.get("properties", {}))
        fields += [
            p["name"]
            for p in operation.get("parameters", [])
            if p["in"] in ("query", "header") and p["name"] not in NEVER_REFUSED
        ]
        paginator = self._get_paginator()
        if fields == [getattr(paginator, "page_size_query_param", None)]:
            try:
                paginator.get_page_size(SimpleNamespace(query_params={fields[0]: "0"}))
            except exceptions.ValidationError as exc:
                return exc
        return exceptions.ValidationError(
            {fields[0] if fields else "non_field_errors": ["Enter a valid value."]}
        )

    def get_auth(self):
        """Only the credentials the view's permission admits (none, for a public view)."""
        auths = super().get_auth()  # registers the security schemes
        caller = self._caller()
        if caller is None:
            return []
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
