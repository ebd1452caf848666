"""
No admin filters on a secret (cleave.admin.tables): a view-only operator counted the
customers matching `?password__regex=` and `?password__startswith=`, a yes or
no answer about each customer's password hash.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from cleave.admin.site import refers_to_secret
from cleave.testing import unit
from tests.contexts.users.factories import CustomerFactory

pytestmark = unit


@pytest.fixture
def viewer(client, db):
    user = get_user_model().objects.create_user(
        username="viewer", password="view only 1", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            codename__in=["view_customer", "view_user", "view_outboxevent", "view_order"]
        )
    )
    client.force_login(user)
    return client


@pytest.fixture
def superuser(client, db):
    user = get_user_model().objects.create_superuser("root", "root@example.com", "root pass 1")
    client.force_login(user)
    return client


@pytest.mark.parametrize("operator", ["viewer", "superuser"])
@pytest.mark.parametrize(
    "query",
    [
        "/admin/users/customer/?password__regex=%5Eargon2",
        "/admin/users/customer/?password__startswith=%24argon2id",
        "/admin/users/customer/?password=x",
        "/admin/users/customer/?PASSWORD__contains=a",
        "/admin/auth/user/?password__startswith=argon2",
        "/admin/cleave/outboxevent/?context=users&data__token__startswith=ey",
        "/admin/cleave/outboxevent/?context=users&data__token__isnull=False",
    ],
)
def test_a_filter_on_a_secret_is_refused_for_every_operator(request, operator, query):
    client = request.getfixturevalue(operator)
    CustomerFactory(email="carol@example.com")

    response = client.get(query)

    assert response.status_code == 400, (query, response.status_code)
    assert b"carol@example.com" not in response.content


def test_filters_on_other_fields_still_work(viewer):
    CustomerFactory(email="carol@example.com")

    response = viewer.get("/admin/users/customer/?status__exact=active")

    assert response.status_code == 200
    assert b"carol@example.com" in response.content


@pytest.mark.parametrize(
    ("lookup", "secret"),
    [
        ("password", True),
        ("password__startswith", True),
        ("customer__password__regex", True),
        ("refresh_tokens__jti", True),
        ("data__token", True),
        ("envelope__data__token__gt", True),
        ("api_secret", True),
        ("token_hash__exact", True),
        ("session_key", True),
        ("idempotency_key", False),
        ("email__startswith", False),
        ("status__exact", False),
        ("saga_id", False),
    ],
)
def test_what_counts_as_a_secret(lookup, secret):
    assert refers_to_secret(lookup) is secret
