"""
Calls made through contracts: `ServiceClient.call` and the declarations it checks.

A call that breaks its contract (a field the callee does not take, a missing
path parameter, an undeclared operation, a permission never granted) is
refused before anything is sent, as a programming error that no retry or
saga would wait out.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace

import pytest

from cleave.calls.client import InProcessCallTransport, ServiceClient
from cleave.core.declarations import (
    ContextContract,
    ContractViolation,
    Operation,
    Problem,
)
from cleave.core.errors import is_technical
from cleave.testing import unit
from contexts.users import commands
from contracts import catalog, inventory, payments, users


class RecordingTransport(InProcessCallTransport):
    """The in-process transport, remembering what each call sent."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    def send(self, client, method, path, body, headers, params, timeout):
        self.sent.append({"method": method, "path": path, "body": body, "params": params})
        return super().send(client, method, path, body, headers, params, timeout)


def client(target: str, caller: str = "orders") -> tuple[ServiceClient, RecordingTransport]:
    transport = RecordingTransport()
    return ServiceClient(target, caller=caller, transport=transport), transport


@unit
def test_a_call_fills_the_path_template_and_reaches_the_view():
    customer = commands.customer_register(email="ada@example.com", password="x" * 10, name="Ada")
    users_client, transport = client("users")

    response = users_client.call(users.CUSTOMER_GET, customer_id=customer.id)

    assert response.status_code == 200, response.content
    assert users.CUSTOMER_GET.answer_errors(response.json()) == []
    (sent,) = transport.sent
    assert (sent["method"], sent["path"]) == ("GET", f"/api/users/customers/{customer.id}")


@unit
def test_a_call_sends_the_body_its_contract_checked():
    inventory_client, transport = client("inventory")
    reservation_id = uuid.uuid4()

    response = inventory_client.call(
        inventory.RESERVATION_RELEASE, reservation_id=reservation_id, json={"reason": "timeout"}
    )

    assert response.status_code == 404  # no such reservation: the callee answered
    (sent,) = transport.sent
    assert sent["path"] == f"/api/inventory/reservations/{reservation_id}/release"
    assert json.loads(sent["body"]) == {"reason": "timeout"}


@unit
def test_uuids_and_decimals_in_the_body_are_sent_as_the_wire_carries_them():
    from decimal import Decimal

    body = payments.CHARGE_CREATE.request_body(
        {
            "order_id": uuid.UUID(int=1),
            "customer_id": uuid.UUID(int=2),
            "amount": Decimal("19.90"),
            "currency": "EUR",
            "payment_method": "card",
        }
    )

    assert body["order_id"] == str(uuid.UUID(int=1))
    assert body["amount"] == "19.90"


def test_a_field_the_callee_does_not_take_is_refused_before_anything_is_sent():
    inventory_client, transport = client("inventory")

    with pytest.raises(ContractViolation) as refused:
        inventory_client.call(
            inventory.RESERVATION_RELEASE,
            reservation_id=uuid.uuid4(),
            json={"reason": "timeout", "colour": "red"},
        )

    assert "colour not accepted (takes reason)" in str(refused.value)
    assert transport.sent == []
    # a bug in the caller, not a failure to wait out: neither the client's
    # retries nor a saga's waits take it for a technical failure
    assert not is_technical(refused.value)


def test_a_missing_required_field_is_refused_with_its_name():
    inventory_client, transport = client("inventory")

    with pytest.raises(ContractViolation, match="'lines' is a required property"):
        inventory_client.call(inventory.RESERVATION_CREATE, json={"order_id": str(uuid.uuid4())})

    assert transport.sent == []


def test_an_operation_built_by_the_caller_is_not_the_one_the_callee_publishes():
    # a caller "extends" the contract on its side: another permission than inventory's
    broken = replace(inventory.RESERVATION_RELEASE, permission="inventory:read")
    inventory_client, transport = client("inventory")

    with pytest.raises(ContractViolation, match="not the operation inventory publishes"):
        inventory_client.call(broken, reservation_id=uuid.uuid4(), json={"colour": "red"})

    assert transport.sent == []


@pytest.mark.parametrize(
    ("path_params", "message"),
    [
        ({}, "missing reservation_id"),
        ({"reservation_id": uuid.UUID(int=1), "order_id": "x"}, "unknown order_id"),
        ({"reservation_id": ""}, "reservation_id is empty"),
    ],
    ids=["missing", "unknown", "empty"],
)
def test_path_parameters_must_be_exactly_the_templates(path_params, message):
    inventory_client, _ = client("inventory")

    with pytest.raises(ContractViolation, match=message):
        inventory_client.call(inventory.RESERVATION_COMMIT, **path_params)


def test_a_path_parameter_is_quoted_so_it_stays_one_segment():
    assert (
        inventory.RESERVATION_COMMIT.build_path({"reservation_id": "a/../b"})
        == "/reservations/a%2F..%2Fb/commit"
    )


def test_an_operation_without_a_body_refuses_one():
    inventory_client, _ = client("inventory")

    with pytest.raises(ContractViolation, match="takes no request body"):
        inventory_client.call(
            inventory.RESERVATION_COMMIT, reservation_id=uuid.uuid4(), json={"now": True}
        )


def test_query_parameters_are_checked_like_a_body():
    inventory_client, _ = client("inventory")

    with pytest.raises(ContractViolation, match="key not accepted"):
        inventory_client.call(inventory.RESERVATION_FIND_BY_KEY, params={"key": "saga:1"})


def test_an_operation_that_does_not_admit_the_caller_is_refused():
    # customer_get lists orders alone among its callers
    users_client, transport = client("users", caller="inventory")

    with pytest.raises(
        ContractViolation, match=r"add 'inventory' to its callers in contracts\.users"
    ):
        users_client.call(users.CUSTOMER_GET, customer_id=uuid.uuid4())

    assert transport.sent == []


def test_a_caller_is_granted_exactly_the_permissions_of_the_operations_it_calls():
    from cleave.calls.operations import grants_of

    assert grants_of("orders") == [
        "inventory:read",
        "inventory:write",
        "payments:read",
        "payments:write",
        "users:read",
    ]
    # inventory calls catalog's public product list alone: it needs no grant
    assert grants_of("inventory") == []
    assert grants_of("analytics") == []


def test_an_operation_no_context_calls_is_refused_to_every_context():
    inventory_client, transport = client("inventory")

    with pytest.raises(ContractViolation, match="does not admit it"):
        inventory_client.call(inventory.RESERVATION_GET, reservation_id=uuid.uuid4())

    assert transport.sent == []


def test_a_write_grant_admits_the_read_operations_of_its_context():
    payments_client, transport = client("payments")

    payments_client.call(payments.CHARGE_FIND_BY_KEY, params={"idempotency_key": "none"})

    assert transport.sent[0]["params"] == {"idempotency_key": "none"}


def test_a_client_for_one_context_refuses_another_contexts_operation():
    users_client, _ = client("users")

    with pytest.raises(ContractViolation, match="catalog's operation; this client calls users"):
        users_client.call(catalog.PRODUCT_GET, product_id=uuid.uuid4())


def test_only_an_operation_can_be_called():
    users_client, _ = client("users")

    with pytest.raises(ContractViolation, match="takes an Operation"):
        users_client.call("/customers/1")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"method": "FETCH"}, "method 'FETCH'"),
        ({"path": "customers"}, "must start with '/'"),
        ({"path": "/x/{json}"}, "may not be named"),
        ({"permission": "payments:write"}, "not users's"),
        ({"permission": "everything"}, "not 'context:action'"),
        ({"callers": ("users",)}, "cannot be one of its callers"),
        ({"callers": ("Orders!",)}, "cannot be one of its callers"),
    ],
)
def test_a_malformed_operation_is_refused_where_it_is_declared(changes, message):
    with pytest.raises(ValueError, match=message):
        replace(users.CUSTOMER_GET, **changes)


def test_a_problem_is_a_4xx_or_5xx_answer():
    with pytest.raises(ValueError, match="is not 4xx or 5xx"):
        Problem(302, "moved")


def test_a_contract_refuses_duplicates_and_other_contexts_operations():
    get = Operation("shop", "thing_get", "GET", "/things/{thing_id}", permission="shop:read")

    with pytest.raises(ValueError, match="operation 'thing_get' twice"):
        ContextContract("shop", operations=(get, get))
    with pytest.raises(ValueError, match="another context's operation"):
        ContextContract("users", operations=(get,))


def test_an_answer_that_lacks_a_promised_field_is_reported():
    errors = users.CUSTOMER_GET.answer_errors({"id": str(uuid.uuid4()), "email": "a@b.c"})

    assert any("'name' is a required property" in error for error in errors)
    assert (
        users.CUSTOMER_GET.answer_errors(
            {
                "id": str(uuid.uuid4()),
                "email": "a@b.c",
                "name": "A",
                "status": "active",
                "email_verified": False,
                "created_at": "2025-01-01T00:00:00Z",
                "extra": 1,
            }
        )
        == []
    )  # answers are open: a callee may answer more


def test_every_request_schema_is_closed_so_unknown_fields_are_refused():
    from cleave.core.declarations import all_contracts

    for contract in all_contracts():
        for operation in contract.operations:
            for check in (operation.shapes.request, operation.shapes.query):
                if check is not None:
                    assert check.schema.get("additionalProperties") is False, operation.qualname


def test_the_shapes_of_an_operation_are_its_views_serializers():
    # what the callee's serializer declares (a length bound, a list's limit),
    # read from its committed OpenAPI document, is checked before sending
    request = inventory.RESERVATION_CREATE.shapes.request.schema

    assert request["properties"]["lines"]["maxItems"] == 100
    assert request["properties"]["lines"]["items"]["additionalProperties"] is False
    assert inventory.RESERVATION_CREATE.statuses == (201, 200)
