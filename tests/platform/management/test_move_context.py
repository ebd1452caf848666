"""
`manage.py move_context` refuses what it cannot do, with a message and
nothing changed (the moves themselves: tests/integration/test_move.py).
"""

from __future__ import annotations

import uuid

import pytest
from django.core.management import CommandError, call_command

from cleave.core.moves import ContextMove
from cleave.testing import require_server

ALL = [
    "default",
    "users",
    "catalog",
    "inventory",
    "orders",
    "payments",
    "notifications",
    "analytics",
]
POSTGRES = "postgres://postgres@127.0.0.1:5432"


def refused(*args: str) -> str:
    with pytest.raises(CommandError) as caught:
        call_command("move_context", *args, "--noinput")
    return str(caught.value)


@pytest.mark.django_db(databases=ALL)
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch", "--to", f"{POSTGRES}/x"], "'nosuch' is not a context served by this process"),
        (["payments", "--to", "sqlite:///x.sqlite3"], "must be a PostgreSQL or MySQL/MariaDB"),
        (["payments", "--to", "ftp://example.com/x"], "--to is not a database URL"),
        (["payments"], "--to is required"),
        (["payments", "--release"], "no move of payments is unfinished"),
    ],
)
def test_bad_input_is_refused_with_a_message(args, message):
    assert message in refused(*args)
    assert not ContextMove.objects.exists()


@pytest.fixture
def postgres_database():
    import psycopg

    require_server("PostgreSQL", "127.0.0.1", 5432)
    name = f"cleave_move_test_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield name
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.services
@pytest.mark.django_db(databases=ALL)
def test_an_unreachable_target_is_refused_naming_it_without_its_password():
    require_server("PostgreSQL", "127.0.0.1", 5432)
    message = refused("payments", "--to", "postgres://postgres:hunter2@127.0.0.1:5432/cleave_nope")
    assert "cannot reach postgres://postgres:***@127.0.0.1:5432/cleave_nope" in message
    assert "hunter2" not in message


@pytest.mark.services
@pytest.mark.django_db(databases=ALL)
def test_a_target_holding_other_tables_is_refused(postgres_database):
    import psycopg

    with psycopg.connect(f"{POSTGRES}/{postgres_database}", autocommit=True) as conn:
        conn.execute("CREATE TABLE someone_elses (x int)")
    message = refused("payments", "--to", f"{POSTGRES}/{postgres_database}")
    assert "is not empty: it holds someone_elses" in message
    assert not ContextMove.objects.exists()
