import uuid

import pytest
from django.contrib.auth.models import Permission

from cleave.testing import customer_headers, published, service_headers, unit
from contexts.payments.models import Payment
from tests.contexts.payments.factories import PaymentFactory

pytestmark = unit

CHARGES = "/api/payments/charges"


def write_headers(**extra):
    """A fresh token each time: module-level tokens could expire in a long run."""
    return {**service_headers("payments:write", service="orders"), **extra}


def charge_body(**overrides):
    return {
        "order_id": str(uuid.uuid4()),
        "customer_id": str(uuid.uuid4()),
        "amount": "39.80",
        "currency": "EUR",
        "payment_method": "tok_visa",
        **overrides,
    }


def assert_problem(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= set(body)
    return body


# --- POST /api/payments/charges -------------------------------------------------


def test_a_service_charges_an_order_and_gets_the_captured_payment(api):
    body = charge_body()

    response = api.post(CHARGES, body, format="json", headers=write_headers())

    assert response.status_code == 201, response.json()
    payment = response.json()
    assert set(payment) == {
        "id",
        "order_id",
        "customer_id",
        "amount",
        "currency",
        "status",
        "failure_reason",
        "created_at",
    }
    assert payment["order_id"] == body["order_id"]
    assert payment["customer_id"] == body["customer_id"]
    assert payment["amount"] == "39.80"
    assert payment["currency"] == "EUR"
    assert payment["status"] == "captured"
    assert payment["failure_reason"] == ""
    assert Payment.objects.using("payments").get().pk == uuid.UUID(payment["id"])


def test_a_declined_charge_is_not_an_http_error(api):
    response = api.post(
        CHARGES,
        charge_body(payment_method="tok_chargeDeclined"),
        format="json",
        headers=write_headers(),
    )

    assert response.status_code == 201
    assert response.json()["status"] == "declined"
    assert response.json()["failure_reason"] == "declined"


def test_a_provider_timeout_answers_a_pending_payment_whose_outcome_is_unknown(api):
    response = api.post(
        CHARGES, charge_body(payment_method="tok_timeout"), format="json", headers=write_headers()
    )

    assert response.status_code == 201
    assert response.json()["status"] == "pending"
    assert response.json()["failure_reason"] == "timeout"


def test_a_repeated_idempotency_key_answers_200_with_the_first_payment(api):
    headers = write_headers(**{"Idempotency-Key": "checkout-42-payment"})
    body = charge_body()

    first = api.post(CHARGES, body, format="json", headers=headers)
    again = api.post(CHARGES, body, format="json", headers=headers)

    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Payment.objects.using("payments").count() == 1
    assert len(published("payments", "payment.completed")) == 1


@pytest.mark.parametrize(
    ("field", "overrides"),
    [
        ("amount", {"amount": "0"}),
        ("amount", {"amount": "-1.00"}),
        ("amount", {"amount": "12.345"}),
        ("amount", {"amount": "ten"}),
        ("order_id", {"order_id": "not-a-uuid"}),
        ("customer_id", {"customer_id": None}),
        ("currency", {"currency": "eur"}),
        ("payment_method", {"payment_method": ""}),
    ],
)
def test_an_invalid_charge_is_a_400_problem_naming_the_field(api, field, overrides):
    response = api.post(CHARGES, charge_body(**overrides), format="json", headers=write_headers())

    body = assert_problem(response, 400)
    assert field in body["errors"]
    assert Payment.objects.using("payments").count() == 0


def test_a_charge_without_a_body_is_a_400_problem(api):
    response = api.post(
        CHARGES, "not json", content_type="application/json", headers=write_headers()
    )

    assert_problem(response, 400)


def test_an_overlong_idempotency_key_is_a_400_problem(api):
    headers = write_headers(**{"Idempotency-Key": "k" * 300})

    response = api.post(CHARGES, charge_body(), format="json", headers=headers)

    body = assert_problem(response, 400)
    assert "Idempotency-Key" in body["errors"]


def test_charging_without_credentials_is_401(api):
    assert_problem(api.post(CHARGES, charge_body(), format="json"), 401)


@pytest.mark.parametrize(
    "make_headers",
    [
        lambda: service_headers("payments:read"),
        lambda: service_headers("inventory:write"),
        lambda: customer_headers(uuid.uuid4()),
    ],
    ids=["read-only token", "other context's token", "customer"],
)
def test_charging_without_payments_write_is_403(api, make_headers):
    response = api.post(CHARGES, charge_body(), format="json", headers=make_headers())

    assert_problem(response, 403)
    assert Payment.objects.using("payments").count() == 0


# --- GET /api/payments/charges?idempotency_key= ---------------------------------------


def test_a_service_finds_a_charge_by_its_idempotency_key(api):
    payment = PaymentFactory(idempotency_key="saga:1:process_payment")

    response = api.get(
        CHARGES,
        {"idempotency_key": "saga:1:process_payment"},
        headers=service_headers("payments:read"),
    )

    assert response.status_code == 200
    assert response.json()["id"] == str(payment.id)
    assert response.json()["status"] == "captured"


def test_a_key_no_charge_was_made_with_is_404(api):
    response = api.get(
        CHARGES, {"idempotency_key": "never-used"}, headers=service_headers("payments:read")
    )

    assert_problem(response, 404)


def test_looking_a_charge_up_needs_its_key(api):
    body = assert_problem(api.get(CHARGES, headers=service_headers("payments:read")), 400)
    assert "idempotency_key" in body["errors"]


def test_looking_a_charge_up_needs_payments_read(api):
    query = {"idempotency_key": "k"}
    assert_problem(api.get(CHARGES, query), 401)
    assert_problem(api.get(CHARGES, query, headers=service_headers("inventory:read")), 403)
    assert_problem(api.get(CHARGES, query, headers=customer_headers(uuid.uuid4())), 403)


def test_staff_may_look_a_charge_up_but_not_charge(api, django_user_model):
    PaymentFactory(idempotency_key="k-staff")
    staff = django_user_model.objects.create_user("op", password="pw", is_staff=True)
    api.force_login(staff)
    # the staff flag alone opens nothing, as in the admin
    assert_problem(api.get(CHARGES, {"idempotency_key": "k-staff"}), 403)

    staff.user_permissions.add(Permission.objects.get(codename="view_payment"))

    assert api.get(CHARGES, {"idempotency_key": "k-staff"}).status_code == 200
    assert_problem(api.post(CHARGES, charge_body(), format="json"), 403)


# --- POST /api/payments/charges/void ---------------------------------------------------


def void_body(**overrides):
    return {**charge_body(), "idempotency_key": "saga:9:process_payment", **overrides}


def test_voiding_a_captured_charge_refunds_it(api):
    body = void_body()
    api.post(
        CHARGES,
        body | {"idempotency_key": None},
        format="json",
        headers=write_headers(**{"Idempotency-Key": body["idempotency_key"]}),
    )

    response = api.post(f"{CHARGES}/void", body, format="json", headers=write_headers())

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "refunded"
    assert len(published("payments", "payment.refunded")) == 1


def test_voiding_a_charge_that_never_arrived_fences_its_key(api):
    body = void_body()

    voided = api.post(f"{CHARGES}/void", body, format="json", headers=write_headers())
    late = api.post(
        CHARGES,
        {name: value for name, value in body.items() if name != "idempotency_key"},
        format="json",
        headers=write_headers(**{"Idempotency-Key": body["idempotency_key"]}),
    )

    assert voided.status_code == 200
    assert (voided.json()["status"], voided.json()["failure_reason"]) == ("failed", "voided")
    assert late.status_code == 200
    assert late.json()["id"] == voided.json()["id"]
    assert published("payments") == []


def test_voiding_needs_the_charges_key_and_payments_write(api):
    body = assert_problem(
        api.post(
            f"{CHARGES}/void",
            void_body(idempotency_key=""),
            format="json",
            headers=write_headers(),
        ),
        400,
    )
    assert "idempotency_key" in body["errors"]
    assert_problem(api.post(f"{CHARGES}/void", void_body(), format="json"), 401)
    response = api.post(
        f"{CHARGES}/void", void_body(), format="json", headers=service_headers("payments:read")
    )
    assert_problem(response, 403)


# --- POST /api/payments/{id}/refund ------------------------------------------------


def test_a_service_refunds_a_captured_payment(api):
    payment = PaymentFactory()

    response = api.post(f"/api/payments/{payment.id}/refund", headers=write_headers())

    assert response.status_code == 200
    assert response.json()["id"] == str(payment.id)
    assert response.json()["status"] == "refunded"
    assert len(published("payments", "payment.refunded")) == 1


def test_refunding_a_declined_payment_returns_it_unchanged(api):
    payment = PaymentFactory(status=Payment.Status.DECLINED, failure_reason="declined")

    response = api.post(f"/api/payments/{payment.id}/refund", headers=write_headers())

    assert response.status_code == 200
    assert response.json()["status"] == "declined"


def test_refunding_an_unknown_payment_is_404(api):
    assert_problem(api.post(f"/api/payments/{uuid.uuid4()}/refund", headers=write_headers()), 404)


def test_refunding_needs_payments_write(api):
    payment = PaymentFactory()

    assert_problem(api.post(f"/api/payments/{payment.id}/refund"), 401)
    response = api.post(
        f"/api/payments/{payment.id}/refund", headers=service_headers("payments:read")
    )
    assert_problem(response, 403)
    payment.refresh_from_db()
    assert payment.status == Payment.Status.CAPTURED


# --- GET /api/payments/{id} ----------------------------------------------------------


def test_a_customer_reads_their_own_payment(api):
    payment = PaymentFactory()

    response = api.get(f"/api/payments/{payment.id}", headers=customer_headers(payment.customer_id))

    assert response.status_code == 200
    assert response.json() == {
        "id": str(payment.id),
        "order_id": str(payment.order_id),
        "amount": "19.90",
        "currency": "EUR",
        "status": "captured",
        "created_at": response.json()["created_at"],
    }


def test_another_customers_payment_is_404(api):
    payment = PaymentFactory()

    response = api.get(f"/api/payments/{payment.id}", headers=customer_headers(uuid.uuid4()))

    assert_problem(response, 404)


def test_an_unknown_payment_is_404(api):
    response = api.get(f"/api/payments/{uuid.uuid4()}", headers=customer_headers(uuid.uuid4()))

    assert_problem(response, 404)


def test_reading_a_payment_needs_a_customer(api):
    payment = PaymentFactory()

    assert_problem(api.get(f"/api/payments/{payment.id}"), 401)
    assert_problem(
        api.get(f"/api/payments/{payment.id}", headers=service_headers("payments:write")), 403
    )


def test_a_malformed_payment_id_is_404(api):
    response = api.get("/api/payments/12345", headers=customer_headers(uuid.uuid4()))

    assert response.status_code == 404
