"""
Database settings per alias, and the same platform tables working on every backend.

CI runs the whole suite twice: on the embedded SQLite default and with
PostgreSQL and MariaDB behind `<LABEL>_DATABASE_URL` (see docs/testing.md).
These tests prove each alias really runs where its URL says.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.db import connections, transaction

from cleave.contexts import context_aliases, database_settings
from cleave.events.models import OutboxEvent
from cleave.testing import unit

VENDORS = {
    "postgres": "postgresql",
    "postgresql": "postgresql",
    "pgsql": "postgresql",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
}


def url_variable(alias: str) -> str:
    return "DATABASE_URL" if alias == "default" else f"{alias.upper()}_DATABASE_URL"


def test_every_alias_runs_on_the_backend_its_url_names(settings):
    for alias in settings.DATABASES:
        url = os.environ.get(url_variable(alias), "")
        expected = VENDORS[url.split(":", 1)[0]] if url else "sqlite"
        assert connections[alias].vendor == expected, f"{alias}: {url or 'embedded default'}"


def test_unset_urls_give_one_sqlite_file_per_alias_in_the_data_directory(tmp_path, monkeypatch):
    for name in ("DATABASE_URL", "USERS_DATABASE_URL", "ORDERS_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)

    databases = database_settings(["users", "orders"], data_dir=tmp_path)

    assert set(databases) == {"default", "users", "orders"}
    for alias, config in databases.items():
        assert config["ENGINE"] == "django.db.backends.sqlite3"
        assert Path(config["NAME"]) == tmp_path / f"{alias}.sqlite3"
        assert "journal_mode=WAL" in config["OPTIONS"]["init_command"]
        assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_each_alias_reads_its_own_url(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cleave")
    monkeypatch.setenv("USERS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cleave_users")
    monkeypatch.setenv("ORDERS_DATABASE_URL", "mysql://root@127.0.0.1:3306/cleave_orders")

    databases = database_settings(["users", "orders"], data_dir=tmp_path)

    assert databases["default"]["NAME"] == "cleave"
    assert databases["users"]["ENGINE"] == "django.db.backends.postgresql"
    assert databases["users"]["NAME"] == "cleave_users"
    orders = databases["orders"]
    assert orders["ENGINE"] == "django.db.backends.mysql"
    assert (orders["NAME"], orders["HOST"], orders["PORT"]) == ("cleave_orders", "127.0.0.1", 3306)
    # Full Unicode (emoji in names) and no gap locks between concurrent checkouts.
    assert orders["OPTIONS"]["charset"] == "utf8mb4"
    assert orders["OPTIONS"]["isolation_level"] == "read committed"
    assert orders["TEST"]["CHARSET"] == "utf8mb4"


@unit
@pytest.mark.parametrize("alias", ["users", "orders", "payments"])
def test_platform_rows_round_trip_unicode_json_and_time_on_every_backend(alias):
    if alias not in context_aliases():
        pytest.skip(f"{alias} is not served by this process")
    data = {"name": "Zoë 🛒", "amount": "19.90", "lines": [{"sku": "A-1", "quantity": 2}]}

    with transaction.atomic(using=alias):
        row = OutboxEvent.objects.using(alias).create(type="probe", source=alias, data=data)

    stored = OutboxEvent.objects.using(alias).get(pk=row.id)
    assert stored.data == data
    assert stored.occurred_at == row.occurred_at
    assert OutboxEvent.objects.using(alias).filter(data__name="Zoë 🛒").count() == 1


@unit
def test_a_rollback_on_one_alias_leaves_the_others_untouched():
    with transaction.atomic(using="orders"):
        OutboxEvent.objects.using("orders").create(type="kept", source="orders", data={})
        with pytest.raises(RuntimeError), transaction.atomic(using="users"):
            OutboxEvent.objects.using("users").create(type="lost", source="users", data={})
            raise RuntimeError("roll back users only")

    assert not OutboxEvent.objects.using("users").exists()
    assert OutboxEvent.objects.using("orders").filter(type="kept").count() == 1
