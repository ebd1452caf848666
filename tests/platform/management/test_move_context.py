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
from tests.support.moving import POSTGRES

ALL = "__all__"


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


@pytest.fixture
def mariadb_database():
    import pymysql

    require_server("MariaDB", "127.0.0.1", 3306)
    name = f"cleave_move_test_{uuid.uuid4().hex[:8]}"
    conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
    conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
    yield name
    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
    conn.close()


@pytest.mark.services
@pytest.mark.django_db(databases=ALL, transaction=True)
def test_a_copy_the_target_refuses_unfreezes_the_source_and_says_why(mariadb_database):
    from django.db import connections

    from cleave.messaging.models import OutboxEvent

    if connections["payments"].vendor != "sqlite":
        pytest.skip("needs payments on SQLite, which keeps any 32 hex digits as a UUID")
    # SQLite keeps any 32 hex digits; MariaDB's UUID type refuses this one
    odd = uuid.UUID("d8b40ef4-a625-e6eb-2bff-7941d25439ff")
    OutboxEvent.objects.using("payments").create(id=odd, type="t", source="payments", data={})
    message = refused("payments", "--to", f"mysql://root@127.0.0.1:3306/{mariadb_database}")
    assert "copying cleave_outboxevent failed" in message
    assert "payments serves from its old database again" in message
    # the source takes writes again, and the journal says the move failed
    OutboxEvent.objects.using("payments").filter(id=odd).update(type="u")
    move = ContextMove.objects.get()
    assert move.state == ContextMove.State.FAILED and "copying" in move.detail
