import uuid

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from cleave.testing import customer_headers, published, service_headers, unit
from contexts.inventory.models import Reservation, StockItem
from tests.contexts.inventory.factories import StockItemFactory

pytestmark = unit

RESERVATIONS = "/api/inventory/reservations"
WRITE = service_headers("inventory:write", service="orders")
READ = service_headers("inventory:read", service="orders")


def stock(sku: str) -> StockItem:
    return StockItem.objects.using("inventory").get(sku=sku)


def body(*lines: tuple[str, int], order_id=None) -> dict:
    return {
        "order_id": str(order_id or uuid.uuid4()),
        "lines": [{"sku": sku, "quantity": quantity} for sku, quantity in lines],
    }


def reserve(api, *lines: tuple[str, int], **headers) -> dict:
    response = api.post(RESERVATIONS, body(*lines), format="json", headers={**WRITE, **headers})
    assert response.status_code == 201, response.json()
    return response.json()


# --- stock -------------------------------------------------------------------------


def test_anyone_may_see_the_stock_of_a_sku(api):
    StockItemFactory(sku="APP-TEE-001", on_hand=10, reserved=4)

    response = api.get("/api/inventory/stock/APP-TEE-001")

    assert response.status_code == 200
    assert response.json() == {"sku": "APP-TEE-001", "on_hand": 10, "reserved": 4, "available": 6}


def test_the_stock_of_an_unknown_sku_is_a_404_problem(api):
    response = api.get("/api/inventory/stock/NOPE")

    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["type"].endswith("not-found")


@pytest.mark.parametrize("sku", ["A%00B", "X" * 65], ids=["nul-byte", "too-long"])
def test_a_sku_no_stock_can_have_is_a_404_problem_on_every_backend(api, sku):
    # PostgreSQL refuses a NUL byte in a query parameter: this was a 500 there
    StockItemFactory(sku="AB", on_hand=3)

    response = api.get(f"/api/inventory/stock/{sku}")

    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/problem+json"


# --- reserve ---------------------------------------------------------------------------


def test_a_reservation_holds_stock_and_answers_201(api):
    StockItemFactory(sku="A", on_hand=10)
    order_id = uuid.uuid4()

    response = api.post(
        RESERVATIONS, body(("A", 3), order_id=order_id), format="json", headers=WRITE
    )

    assert response.status_code == 201
    answer = response.json()
    assert set(answer) == {"id", "order_id", "status", "lines", "expires_at", "created_at"}
    assert answer["order_id"] == str(order_id)
    assert answer["status"] == "held"
    assert answer["lines"] == [{"sku": "A", "quantity": 3}]
    assert api.get("/api/inventory/stock/A").json()["available"] == 7


def test_a_short_sku_is_a_409_out_of_stock_problem_and_nothing_is_held(api):
    StockItemFactory(sku="A", on_hand=10)
    StockItemFactory(sku="B", on_hand=1)

    response = api.post(RESERVATIONS, body(("A", 2), ("B", 2)), format="json", headers=WRITE)

    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"].endswith("out-of-stock")
    assert problem["errors"] == {"lines": ["B"]}
    assert (stock("A").reserved, stock("B").reserved) == (0, 0)
    assert not Reservation.objects.using("inventory").exists()


def test_a_repeated_idempotency_key_answers_200_with_the_same_reservation(api):
    StockItemFactory(sku="A", on_hand=10)
    payload = body(("A", 4))
    headers = {**WRITE, "Idempotency-Key": "checkout-1:reserve"}

    first = api.post(RESERVATIONS, payload, format="json", headers=headers)
    again = api.post(RESERVATIONS, payload, format="json", headers=headers)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert stock("A").reserved == 4
    assert len(published("inventory", "inventory.reserved")) == 1


def test_without_an_idempotency_key_each_request_reserves(api):
    StockItemFactory(sku="A", on_hand=10)
    payload = body(("A", 4))

    first = api.post(RESERVATIONS, payload, format="json", headers=WRITE)
    second = api.post(RESERVATIONS, payload, format="json", headers=WRITE)

    assert (first.status_code, second.status_code) == (201, 201)
    assert first.json()["id"] != second.json()["id"]
    assert stock("A").reserved == 8


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"order_id": "nope", "lines": [{"sku": "A", "quantity": 1}]}, "order_id"),
        ({"order_id": str(uuid.uuid4()), "lines": []}, "lines"),
        ({"order_id": str(uuid.uuid4())}, "lines"),
        (
            {"order_id": str(uuid.uuid4()), "lines": [{"sku": "A", "quantity": 0}]},
            "lines.0.quantity",
        ),
        (
            {"order_id": str(uuid.uuid4()), "lines": [{"sku": "A", "quantity": "x"}]},
            "lines.0.quantity",
        ),
        *[
            # JSON integers only: not a string, a float, other digits or a boolean
            (
                {"order_id": str(uuid.uuid4()), "lines": [{"sku": "A", "quantity": q}]},
                "lines.0.quantity",
            )
            for q in ("2", 2.0, "٢", True)
        ],
        (
            {"order_id": str(uuid.uuid4()), "lines": [{"sku": "A\nB", "quantity": 1}]},
            "lines.0.sku",
        ),
        (
            {"order_id": str(uuid.uuid4()), "lines": [{"sku": "A" * 65, "quantity": 1}]},
            "lines.0.sku",
        ),
        ({"order_id": str(uuid.uuid4()), "lines": [{"quantity": 1}]}, "lines.0.sku"),
        ({"order_id": str(uuid.uuid4()), "lines": "A"}, "lines"),
    ],
)
def test_invalid_reservation_requests_are_400_problems(api, payload, field):
    StockItemFactory(sku="A", on_hand=10)

    response = api.post(RESERVATIONS, payload, format="json", headers=WRITE)

    assert response.status_code == 400
    problem = response.json()
    assert problem["type"].endswith("validation-error")
    assert field in problem["errors"]
    assert stock("A").reserved == 0


def test_a_body_that_is_not_json_is_a_400_problem(api):
    response = api.post(RESERVATIONS, "{nope", content_type="application/json", headers=WRITE)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"


def test_reserving_without_a_token_is_401(api):
    StockItemFactory(sku="A", on_hand=10)

    response = api.post(RESERVATIONS, body(("A", 1)), format="json")

    assert response.status_code == 401
    assert response["Content-Type"] == "application/problem+json"
    assert stock("A").reserved == 0


@pytest.mark.parametrize(
    "headers",
    [
        service_headers("inventory:read", service="orders"),
        service_headers("catalog:read", service="orders"),
        customer_headers(uuid.uuid4()),
    ],
    ids=["read-only service", "other service", "customer"],
)
def test_reserving_without_inventory_write_is_403(api, headers):
    StockItemFactory(sku="A", on_hand=10)

    response = api.post(RESERVATIONS, body(("A", 1)), format="json", headers=headers)

    assert response.status_code == 403
    assert stock("A").reserved == 0


def test_a_forged_service_token_is_401(api):
    response = api.post(
        RESERVATIONS, body(("A", 1)), format="json", headers={"X-Service-Token": "forged"}
    )

    assert response.status_code == 401


# --- read, commit, release ---------------------------------------------------------------


def test_a_reservation_is_read_with_inventory_read(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 2))

    response = api.get(f"{RESERVATIONS}/{created['id']}", headers=READ)

    assert response.status_code == 200
    assert response.json() == created


def test_staff_may_read_a_reservation_from_their_admin_session_with_its_view_permission(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 2))
    staff = get_user_model().objects.create_user("operator", password="x" * 12, is_staff=True)
    api.force_login(staff)
    assert api.get(f"{RESERVATIONS}/{created['id']}").status_code == 403  # the flag alone

    staff.user_permissions.add(Permission.objects.get(codename="view_reservation"))
    response = api.get(f"{RESERVATIONS}/{created['id']}")

    assert response.status_code == 200


def test_reading_a_reservation_needs_a_token(api):
    assert api.get(f"{RESERVATIONS}/{uuid.uuid4()}").status_code == 401


def test_an_unknown_reservation_is_a_404_problem(api):
    for method, suffix in (("get", ""), ("post", "/commit"), ("post", "/release")):
        response = getattr(api, method)(f"{RESERVATIONS}/{uuid.uuid4()}{suffix}", headers=WRITE)

        assert response.status_code == 404
        assert response["Content-Type"] == "application/problem+json"


def test_commit_answers_the_committed_reservation_and_moves_stock(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))

    response = api.post(f"{RESERVATIONS}/{created['id']}/commit", headers=WRITE)
    again = api.post(f"{RESERVATIONS}/{created['id']}/commit", headers=WRITE)

    assert (response.status_code, again.status_code) == (200, 200)
    assert response.json()["status"] == "committed"
    assert api.get("/api/inventory/stock/A").json() == {
        "sku": "A",
        "on_hand": 7,
        "reserved": 0,
        "available": 7,
    }


def test_release_restores_the_available_stock(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))

    response = api.post(
        f"{RESERVATIONS}/{created['id']}/release",
        {"reason": "payment_declined"},
        format="json",
        headers=WRITE,
    )

    assert response.status_code == 200
    assert response.json()["status"] == "released"
    assert api.get("/api/inventory/stock/A").json()["available"] == 10
    [event] = published("inventory", "inventory.released")
    assert event.data["reason"] == "payment_declined"


def test_release_without_a_body_uses_the_default_reason(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))

    response = api.post(f"{RESERVATIONS}/{created['id']}/release", headers=WRITE)

    assert response.status_code == 200
    [event] = published("inventory", "inventory.released")
    assert event.data["reason"] == "released"


def test_commit_after_release_is_a_409_problem(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))
    api.post(f"{RESERVATIONS}/{created['id']}/release", headers=WRITE)

    response = api.post(f"{RESERVATIONS}/{created['id']}/commit", headers=WRITE)

    assert response.status_code == 409
    assert response.json()["type"].endswith("reservation-released")
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)


def test_release_after_commit_is_a_409_problem(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))
    api.post(f"{RESERVATIONS}/{created['id']}/commit", headers=WRITE)

    response = api.post(f"{RESERVATIONS}/{created['id']}/release", headers=WRITE)

    assert response.status_code == 409
    assert (stock("A").on_hand, stock("A").reserved) == (7, 0)


def test_return_puts_committed_stock_back(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))
    api.post(f"{RESERVATIONS}/{created['id']}/commit", headers=WRITE)

    response = api.post(
        f"{RESERVATIONS}/{created['id']}/return",
        {"reason": "customer_request"},
        format="json",
        headers=WRITE,
    )

    assert response.status_code == 200
    assert response.json()["status"] == "returned"
    assert (stock("A").on_hand, stock("A").reserved) == (10, 0)


def test_a_reservation_is_found_by_its_idempotency_key(api):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 1), **{"Idempotency-Key": "saga:7:reserve_inventory"})

    found = api.get(RESERVATIONS, {"idempotency_key": "saga:7:reserve_inventory"}, headers=READ)
    missing = api.get(RESERVATIONS, {"idempotency_key": "nope"}, headers=READ)
    no_key = api.get(RESERVATIONS, headers=READ)

    assert found.status_code == 200
    assert found.json()["id"] == created["id"]
    assert missing.status_code == 404
    assert no_key.status_code == 400
    assert "idempotency_key" in no_key.json()["errors"]


def test_looking_a_reservation_up_by_key_needs_inventory_read(api):
    query = {"idempotency_key": "k"}
    assert api.get(RESERVATIONS, query).status_code == 401
    assert api.get(RESERVATIONS, query, headers=customer_headers(uuid.uuid4())).status_code == 403


@pytest.mark.parametrize("suffix", ["/commit", "/release", "/return"])
def test_commit_and_release_need_inventory_write(api, suffix):
    StockItemFactory(sku="A", on_hand=10)
    created = reserve(api, ("A", 3))

    anonymous = api.post(f"{RESERVATIONS}/{created['id']}{suffix}")
    read_only = api.post(f"{RESERVATIONS}/{created['id']}{suffix}", headers=READ)

    assert (anonymous.status_code, read_only.status_code) == (401, 403)
    assert stock("A").reserved == 3
