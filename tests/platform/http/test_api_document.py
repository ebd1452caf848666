"""
What `/api/schema/` tells a client, and a client generated from it.

The document names its components after resources, declares every closed set
as a named enum, shows real examples of its problem answers and says which
operations need no credentials (`cleave.http.openapi`). The proof that it reads
well is a client generated from it with openapi-python-client: its models are
the resources' names, and it imports.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import TextChoices

from cleave.core.declarations import all_contracts
from cleave.http.problems import PROBLEM_BASE
from cleave.testing import customer_headers, service_headers, unit
from contexts.notifications.models import Notification
from contexts.orders.models import Order
from contexts.users.commands import customer_register
from contracts import inventory, orders, payments, users

PUBLIC = {
    ("post", "/api/users/"),
    ("post", "/api/users/token"),
    ("post", "/api/users/token/refresh"),
    ("post", "/api/users/verify"),
    ("get", "/api/catalog/products"),
    ("get", "/api/catalog/products/{product_id}"),
    ("get", "/api/catalog/categories"),
    ("get", "/api/inventory/stock/{sku}"),
}

# (component, property): the enum component its value is one of
ENUMS: dict[tuple[str, str], tuple[str, type[TextChoices]]] = {
    ("Order", "status"): ("OrderStatus", Order.Status),
    ("Order", "cancellation_reason"): ("CancellationReason", orders.CancellationReason),
    ("OrderState", "status"): ("OrderStatus", Order.Status),
    ("Payment", "status"): ("PaymentStatus", payments.PaymentStatus),
    ("Charge", "status"): ("PaymentStatus", payments.PaymentStatus),
    ("Charge", "failure_reason"): ("FailureReason", payments.FailureReason),
    ("Reservation", "status"): ("ReservationStatus", inventory.ReservationStatus),
    ("Customer", "status"): ("CustomerStatus", users.CustomerStatus),
    ("Notification", "kind"): ("NotificationKind", Notification.Kind),
    ("Notification", "channel"): ("NotificationChannel", Notification.Channel),
    ("Notification", "status"): ("NotificationStatus", Notification.Status),
}

RESOURCES = {
    "Customer",
    "CustomerRegistration",
    "TokenRequest",
    "TokenPair",
    "Order",
    "OrderLine",
    "Cart",
    "CartItem",
    "CartItemAddition",
    "Checkout",
    "Product",
    "Category",
    "Stock",
    "Reservation",
    "ReservationRequest",
    "Payment",
    "Charge",
    "ChargeRequest",
    "Notification",
    "ShopSummary",
    "Problem",
}

# What a component's name must not read like: a view, a serializer's role,
# drf-spectacular's suffixes and prefixes, an enum told apart by a hash.
UNREADABLE = re.compile(r"View|Input|Output|Serializer|^Patched|[0-9a-f]{3}Enum$|[a-z]Enum$")


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    from django.test import Client

    answer = Client().get("/api/schema/", {"format": "json"})
    assert answer.status_code == 200
    return answer.json()


def operations(document: dict[str, Any]):
    for path, item in document["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    return document["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]


def enum_refs(node: dict[str, Any]) -> list[str]:
    """The components a property refers to, whether directly, in `allOf` or in `oneOf`."""
    refs = [node] if "$ref" in node else [*node.get("allOf", []), *node.get("oneOf", [])]
    return [ref["$ref"].rsplit("/", 1)[-1] for ref in refs]


def test_the_document_generates_without_a_warning_and_validates(tmp_path):
    # a serializer without a name, a closed set of two classes, an example of another
    # status: each is a warning or an error of drf-spectacular's, and fails here
    call_command("spectacular", "--fail-on-warn", "--validate", "--file", str(tmp_path / "a.yml"))


# --- enums -------------------------------------------------------------------------------


@pytest.mark.parametrize(("component", "field"), list(ENUMS))
def test_every_closed_set_is_an_enum_named_after_its_class(document, component, field):
    name, choices = ENUMS[component, field]
    schemas = document["components"]["schemas"]

    assert name in enum_refs(schemas[component]["properties"][field])
    assert schemas[name]["enum"] == choices.values
    assert schemas[name]["type"] == "string"


def test_a_nullable_set_also_takes_null_and_a_blank_one_the_empty_string(document):
    schemas = document["components"]["schemas"]

    assert enum_refs(schemas["Order"]["properties"]["cancellation_reason"]) == [
        "CancellationReason",
        "NullEnum",
    ]
    assert enum_refs(schemas["Charge"]["properties"]["failure_reason"]) == [
        "FailureReason",
        "BlankEnum",
    ]
    assert schemas["NullEnum"] == {"enum": [None]}
    assert schemas["BlankEnum"] == {"enum": [""]}


def test_a_query_parameter_of_a_closed_set_refers_to_its_enum(document):
    parameters = document["paths"]["/api/users/customers"]["get"]["parameters"]
    status = next(p for p in parameters if p["name"] == "status")

    assert status["schema"] == {"$ref": "#/components/schemas/CustomerStatus"}


def test_no_enum_is_left_inline(document):
    """Every enum is a component of its own, so that a client has one type for each set."""
    inline: list[str] = []

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            if "enum" in node:
                inline.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{where}/{index}")

    for name, schema in document["components"]["schemas"].items():
        for key, value in schema.items():
            if key != "enum":
                walk(value, f"{name}/{key}")
    walk(document["paths"], "paths")

    assert inline == []


# --- names -------------------------------------------------------------------------------


def test_components_are_named_after_resources(document):
    names = set(document["components"]["schemas"])

    assert names >= RESOURCES
    assert {name for name in names if UNREADABLE.search(name)} == {"BlankEnum", "NullEnum"}


def test_a_patch_body_is_documented_as_the_view_validates_it(document):
    """The view validates the whole serializer: `quantity` is required, as it is."""
    body = document["paths"]["/api/orders/cart/items/{item_id}"]["patch"]["requestBody"]
    schema = resolve(document, body["content"]["application/json"]["schema"])

    assert schema["required"] == ["quantity"]


# --- credentials -------------------------------------------------------------------------


def test_public_operations_need_no_credentials_and_the_others_name_theirs(document):
    schemes = set(document["components"]["securitySchemes"])
    public = set()
    for method, path, operation in operations(document):
        if operation["security"] == []:
            public.add((method, path))
        else:
            named = {name for requirement in operation["security"] for name in requirement}
            assert named and named <= schemes, (method, path)

    assert public == PUBLIC


# --- examples of problems ----------------------------------------------------------------


def problem_answers(document: dict[str, Any]):
    for method, path, operation in operations(document):
        for code, answer in operation["responses"].items():
            if int(code) >= 400:
                yield method, path, int(code), answer


def test_every_problem_answer_shows_real_examples_of_its_status(document):
    for method, path, code, answer in problem_answers(document):
        examples = answer["content"]["application/problem+json"]["examples"]
        assert examples, (method, path, code)
        for example in examples.values():
            body = example["value"]
            assert body["status"] == code, (method, path, code)
            assert body["type"].startswith(PROBLEM_BASE)
            assert example["summary"] == body["type"].removeprefix(PROBLEM_BASE)
            assert set(body) <= {"type", "title", "status", "detail", "errors"}


def examples_of(document: dict[str, Any], method: str, path: str, code: int) -> dict[str, Any]:
    answer = document["paths"][path][method]["responses"][str(code)]
    return {
        example["summary"]: example["value"]
        for example in answer["content"]["application/problem+json"]["examples"].values()
    }


def test_a_conflict_shows_each_problem_a_client_acts_on(document):
    shown = examples_of(document, "post", "/api/inventory/reservations", 409)

    assert set(shown) == {"out-of-stock", "idempotency-key-reused"}
    assert shown["out-of-stock"]["errors"] == {"lines": ["MUG-042"]}
    assert shown["out-of-stock"]["title"] == "Out of stock"


def test_the_problems_a_view_implies_show_what_the_api_answers(document):
    path = "/api/orders/{order_id}"
    assert examples_of(document, "get", path, 401)["not-authenticated"]["detail"] == (
        "Authentication credentials were not provided."
    )
    assert examples_of(document, "get", path, 403)["not-allowed"]["detail"] == (
        "A customer access token is required."
    )
    assert set(examples_of(document, "get", path, 404)) == {"not-found"}
    assert examples_of(document, "post", "/api/users/", 400)["validation-error"]["errors"] == {
        "email": ["This field is required."]
    }


def test_every_problem_a_contract_names_is_an_example_of_its_operation(document):
    for contract in all_contracts():
        for operation in contract.operations:
            for problem in operation.problems:
                shown = examples_of(
                    document, operation.method.lower(), operation.api_path, problem.status
                )
                assert problem.code in shown, (operation.qualname, problem.code)


@unit
def test_the_examples_are_what_the_api_answers(api, document):
    # given a customer with an empty cart and no orders
    ada = customer_register(email="ada@example.com", password="correct horse", name="Ada")
    customer = customer_headers(ada.id, ada.email)

    # when they check out, page past their orders or ask for a page of none; a forged
    # token is verified or sent to the public catalog; a service reads orders
    answers = {
        ("post", "/api/orders/checkout", 400, "empty-cart"): api.post(
            "/api/orders/checkout", {"payment_method": "tok_visa"}, format="json", headers=customer
        ),
        ("get", "/api/orders/", 404, "not-found"): api.get("/api/orders/?page=2", headers=customer),
        ("get", "/api/orders/", 400, "validation-error"): api.get(
            "/api/orders/?page_size=0", headers=customer
        ),
        ("post", "/api/users/verify", 400, "verification-token-invalid"): api.post(
            "/api/users/verify", {"token": "forged"}, format="json"
        ),
        ("get", "/api/catalog/categories", 401, "not-authenticated"): api.get(
            "/api/catalog/categories", headers={"Authorization": "Bearer forged"}
        ),
        ("get", "/api/orders/", 403, "not-allowed"): api.get(
            "/api/orders/", headers=service_headers("users:read")
        ),
    }

    # then each answer is its example, word for word
    for (method, path, status, code), answer in answers.items():
        assert answer.status_code == status
        assert answer.json() == examples_of(document, method, path, status)[code], path


# --- a generated client ------------------------------------------------------------------


@pytest.fixture(scope="module")
def client_package(document, tmp_path_factory) -> Path:
    """The document's client, generated by openapi-python-client (its CLI, as a user runs it)."""
    folder = tmp_path_factory.mktemp("client")
    (folder / "openapi.json").write_text(json.dumps(document))
    (folder / "config.yaml").write_text("post_hooks: []\n")  # no formatter needed to import
    generator = Path(sys.executable).parent / "openapi-python-client"
    run = subprocess.run(
        [
            str(generator),
            "generate",
            "--path",
            str(folder / "openapi.json"),
            "--meta",
            "none",
            "--output-path",
            str(folder / "cleave_client"),
            "--config",
            str(folder / "config.yaml"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout, run.stdout
    return folder


def test_a_generated_client_has_readable_model_names(client_package):
    models = client_package / "cleave_client" / "models"
    modules = {path.stem for path in models.glob("*.py")} - {"__init__"}

    assert {
        "customer_registration",
        "token_request",
        "order",
        "order_status",
        "cancellation_reason",
        "cart_item",
        "reservation",
        "charge",
        "payment_status",
        "failure_reason",
    } <= modules
    unreadable = {m for m in modules if re.search(r"view|input|output|patched|enum$", m)}
    assert unreadable <= {"blank_enum", "null_enum"}


def test_a_generated_client_imports_and_reads_an_order(client_package, monkeypatch):
    monkeypatch.syspath_prepend(str(client_package))
    client = importlib.import_module("cleave_client")
    models = importlib.import_module("cleave_client.models")

    order = models.Order.from_dict(
        {
            "id": "3f2b8c1e-6d4a-4b9e-a1c7-5e8d2f0b9a6c",
            "status": "cancelled",
            "lines": [],
            "total": "19.90",
            "currency": "EUR",
            "payment_id": None,
            "cancellation_reason": "out_of_stock",
            "created_at": "2026-01-02T03:04:05Z",
        }
    )

    assert client.Client and client.AuthenticatedClient
    assert order.status is models.OrderStatus.CANCELLED
    assert order.cancellation_reason is models.CancellationReason.OUT_OF_STOCK
    assert importlib.import_module("cleave_client.api.orders.orders_retrieve").sync
