"""
Every alias is served by a backend that counts its statements, their time and
errors, and its connections, per alias (django-prometheus's metrics), without
changing what the alias runs on; a pooled PostgreSQL connection counts each
statement once however often it was checked out.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from django.db import DatabaseError, connections
from django.db.utils import ConnectionHandler
from django_prometheus.db.metrics import (
    connections_total,
    errors_total,
    execute_total,
    query_duration_seconds,
)

from cleave.core.databases import database_settings, with_query_metrics
from cleave.testing import require_server, unit

POSTGRES = os.environ.get("CLEAVE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")


def counted(metric, *labels: str) -> float:
    return metric.labels(*labels)._value.get()


def test_each_vendor_gets_its_counting_backend_with_the_same_options(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("USERS_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cleave_users")
    monkeypatch.setenv("ORDERS_DATABASE_URL", "mysql://root@127.0.0.1:3306/cleave_orders")
    plain = database_settings(["users", "orders"], data_dir=tmp_path)

    counting = with_query_metrics(plain)

    assert {alias: config["ENGINE"] for alias, config in counting.items()} == {
        "default": "cleave.core.backends.sqlite3",
        "users": "cleave.core.backends.postgresql",
        "orders": "cleave.core.backends.mysql",
    }
    for alias, config in counting.items():
        assert {**config, "ENGINE": plain[alias]["ENGINE"]} == plain[alias]


@unit
def test_every_alias_counts_its_statements_and_their_time(settings):
    for alias in settings.DATABASES:
        connection = connections[alias]
        assert settings.DATABASES[alias]["ENGINE"].startswith("cleave.core.backends.")
        statements = counted(execute_total, alias, connection.vendor)
        timed = query_duration_seconds.labels(alias, connection.vendor)._sum.get()

        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")

        assert counted(execute_total, alias, connection.vendor) == statements + 1, alias
        assert query_duration_seconds.labels(alias, connection.vendor)._sum.get() > timed


def errors_of(alias: str) -> dict[str, float]:
    """{exception type: count} of `alias`'s failed statements in this process."""
    return {
        sample.labels["type"]: sample.value
        for family in errors_total.collect()
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels["alias"] == alias
    }


@unit
def test_a_failing_statement_is_counted_by_its_type():
    before = errors_of("catalog")

    with pytest.raises(DatabaseError), connections["catalog"].cursor() as cursor:
        cursor.execute("SELECT * FROM no_such_table_anywhere")

    after = errors_of("catalog")
    # the driver's own class: OperationalError (sqlite3), UndefinedTable (psycopg)...
    raised = [kind for kind, count in after.items() if count == before.get(kind, 0) + 1]
    assert len(raised) == 1, (before, after)


def test_a_pooled_connection_counts_each_statement_once(tmp_path, monkeypatch, django_db_blocker):
    parts = urlsplit(POSTGRES)
    require_server("PostgreSQL", parts.hostname, parts.port or 5432)
    monkeypatch.setenv("POOLED_DATABASE_URL", f"{POSTGRES.rstrip('/')}/postgres")
    monkeypatch.setenv("POOLED_DB_POOL_MAX", "2")
    handler = ConnectionHandler(
        with_query_metrics(database_settings(["pooled"], data_dir=tmp_path))
    )
    connection = handler["pooled"]
    statements = counted(execute_total, "pooled", "postgresql")
    checkouts = counted(connections_total, "pooled", "postgresql")
    depths = set()
    with django_db_blocker.unblock():
        for _ in range(30):
            with connection.cursor() as cursor:
                cursor.execute("SELECT 1")
            depths.add(len(connection.connection.cursor_factory.__mro__))
            connection.close()  # back to the pool
        connection.close_pool()

    # 30 statements, and the pool's check of a connection it hands out again
    # (wrapped once more at each checkout, they would have been counted 30 x 31 / 2 times)
    assert 30 <= counted(execute_total, "pooled", "postgresql") - statements < 60
    assert counted(connections_total, "pooled", "postgresql") - checkouts == 30
    assert len(depths) == 1  # one class, whatever the number of checkouts
