"""
Admin actions that change data check the operator's permission: a staff user
who may only view sees none of them and cannot run one by posting it; one
with the model's change permission may (the platform's own tables keep their
actions for superusers).
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.test import RequestFactory

from cleave.testing import unit

pytestmark = unit


def staff_with(codenames: list[str]):
    user = get_user_model().objects.create_user(
        username=f"op-{'-'.join(codenames)[:30] or 'none'}", password="x" * 12, is_staff=True
    )
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return get_user_model().objects.get(pk=user.pk)  # permissions are cached per instance


def changelist_request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


ADMINS = [
    (model, model_admin)
    for model, model_admin in admin.site._registry.items()
    if set(model_admin.actions or ()) - {"delete_selected"}
]


def test_every_admin_with_actions_is_checked():
    labels = {model._meta.label for model, _ in ADMINS}
    assert {
        "users.Customer",
        "orders.Order",
        "payments.Payment",
        "inventory.Reservation",
        "cleave.OutboxEvent",
        "cleave.DeadLetter",
        "cleave.SagaInstance",
    } <= labels


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=lambda v: getattr(v, "__name__", ""))
def test_a_view_only_operator_is_offered_no_action_that_changes_data(model, model_admin):
    viewer = staff_with([f"view_{model._meta.model_name}"])

    actions = model_admin.get_actions(changelist_request(viewer))

    assert list(actions) == [], f"{model._meta.label}: {list(actions)}"


@pytest.mark.parametrize(("model", "model_admin"), ADMINS, ids=lambda v: getattr(v, "__name__", ""))
def test_an_operator_who_may_change_the_model_is_offered_its_actions(model, model_admin):
    if model._meta.app_label == "cleave":
        pytest.skip("the platform's tables offer their actions to superusers only")
    editor = staff_with([f"view_{model._meta.model_name}", f"change_{model._meta.model_name}"])

    actions = model_admin.get_actions(changelist_request(editor))

    assert set(model_admin.actions) - {"delete_selected"} <= set(actions)


def test_posting_an_action_without_permission_changes_nothing(client):
    from contexts.users import commands
    from contexts.users.models import Customer

    customer = commands.customer_register(email="c@example.com", password="x" * 12, name="C")
    viewer = staff_with(["view_customer"])
    client.force_login(viewer)

    response = client.post(
        "/admin/users/customer/",
        {"action": "block", "_selected_action": [str(customer.pk)]},
    )

    assert response.status_code in (200, 302)
    assert Customer.objects.using("users").get(pk=customer.pk).status == Customer.Status.ACTIVE
