"""The database router, the tables it puts in each alias, and the cross-context check."""

from __future__ import annotations

import uuid

import pytest
from django.apps import apps
from django.db import connections, models, router

from cleave.core.registry import context_aliases, get_context
from cleave.core.router import ContextRouter, check_no_cross_context_relations
from cleave.messaging.models import OutboxEvent
from cleave.testing import unit
from contexts.users.models import Customer

CLEAVE_TABLES = {
    "cleave_outboxevent",
    "cleave_inboxrecord",
    "cleave_sagainstance",
    "cleave_sagasteplog",
}
DJANGO_TABLES = {"auth_user", "django_admin_log", "django_session", "django_content_type"}


def test_a_contexts_models_are_read_and_written_in_its_own_alias():
    assert router.db_for_read(Customer) == "users"
    assert router.db_for_write(Customer) == "users"


def test_every_context_owns_an_alias_named_after_its_label(settings):
    assert context_aliases() == list(settings.CLEAVE_CONTEXTS)
    assert set(settings.DATABASES) == {"default", *settings.CLEAVE_CONTEXTS}
    assert get_context("users").database == "users"


def test_platform_rows_are_written_where_they_were_read():
    row = OutboxEvent(type="x", source="users", data={})
    row._state.db = "users"

    assert router.db_for_write(OutboxEvent, instance=row) == "users"


def test_platform_tables_migrate_into_every_context_alias_and_not_into_default():
    rule = ContextRouter()

    for alias in context_aliases():
        assert rule.allow_migrate(alias, "cleave", model_name="outboxevent") is True
    assert rule.allow_migrate("default", "cleave", model_name="outboxevent") is False


def test_djangos_own_apps_migrate_only_into_default():
    rule = ContextRouter()

    for app_label in ("auth", "admin", "sessions", "contenttypes"):
        assert rule.allow_migrate("default", app_label) is True
        for alias in context_aliases():
            assert rule.allow_migrate(alias, app_label) is False


def test_a_contexts_tables_migrate_only_into_its_own_alias():
    rule = ContextRouter()

    assert rule.allow_migrate("users", "users", model_name="customer") is True
    for alias in ["default", *context_aliases()]:
        if alias != "users":
            assert rule.allow_migrate(alias, "users", model_name="customer") is False


def test_relations_within_a_context_are_allowed_and_across_contexts_refused():
    rule = ContextRouter()
    customer = Customer(email="a@example.com", name="A")
    other = Customer(email="b@example.com", name="B")
    event = OutboxEvent(type="x", source="users", data={})

    assert rule.allow_relation(customer, other) is True
    assert rule.allow_relation(customer, event) is False


@unit
def test_the_migrated_tables_really_exist_where_the_router_says():
    for alias in connections.settings:
        tables = set(connections[alias].introspection.table_names())
        if alias == "default":
            assert tables >= DJANGO_TABLES
            assert not tables & CLEAVE_TABLES, alias
            assert "users_customer" not in tables
        else:
            assert tables >= CLEAVE_TABLES, alias
            assert not tables & DJANGO_TABLES, alias
            assert ("users_customer" in tables) == (alias == "users"), alias


# --- the system check that refuses relations across contexts -------------------------------


@pytest.fixture
def temporary_models():
    """Forget models a test declared, so the app registry stays as the project defines it."""
    before = {label: set(registered) for label, registered in apps.all_models.items()}
    declared: list[type[models.Model]] = []
    yield declared
    for label, registered in apps.all_models.items():
        for name in set(registered) - before.get(label, set()):
            del registered[name]  # the model and, for a many-to-many, its through model
    apps.clear_cache()


def _declare(app_label: str, **fields) -> type[models.Model]:
    name = f"Probe{uuid.uuid4().hex[:8]}"
    meta = type("Meta", (), {"app_label": app_label})
    return type(
        name,
        (models.Model,),
        {"__module__": f"contexts.{app_label}.models", "Meta": meta, **fields},
    )


def _errors_about(model: type[models.Model]) -> list:
    found = check_no_cross_context_relations(
        app_configs=[apps.get_app_config(model._meta.app_label)]
    )
    return [error for error in found if getattr(error.obj, "model", None) is model]


def test_a_foreign_key_to_another_contexts_model_is_refused(temporary_models):
    model = _declare(
        "orders", customer=models.ForeignKey("users.Customer", on_delete=models.CASCADE)
    )
    temporary_models.append(model)

    errors = _errors_about(model)

    assert [error.id for error in errors] == ["cleave.E001"]
    assert "relates to users" in errors[0].msg
    assert errors[0].obj.name == "customer"


def test_a_many_to_many_to_another_contexts_model_is_refused(temporary_models):
    model = _declare("orders", watchers=models.ManyToManyField("users.Customer"))
    temporary_models.append(model)

    assert [error.id for error in _errors_about(model)] == ["cleave.E001"]


def test_a_reference_by_id_to_another_contexts_aggregate_passes(temporary_models):
    model = _declare("orders", customer_id=models.UUIDField())
    temporary_models.append(model)

    assert _errors_about(model) == []


def test_a_foreign_key_inside_one_context_passes(temporary_models):
    model = _declare(
        "users", customer=models.ForeignKey("users.Customer", on_delete=models.CASCADE)
    )
    temporary_models.append(model)

    assert _errors_about(model) == []
