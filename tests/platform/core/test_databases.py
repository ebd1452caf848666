"""
Database settings per alias, and the same platform tables working on every backend.

CI runs the whole suite twice: on the embedded SQLite default and with
PostgreSQL and MariaDB behind `<LABEL>_DATABASE_URL` (see docs/testing.md).
These tests prove each alias really runs where its URL says, that a
PostgreSQL or MariaDB alias takes its connections from a bounded pool
(`<LABEL>_DB_POOL_*`) and that `cleave.core.db.release()` hands them back to it.
The MariaDB pool's own behaviour against a real server is in
tests/platform/core/test_mysql_pool.py.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import OperationalError, connections, transaction
from django.db.utils import ConnectionHandler

from cleave.core.conf import POOL_DEFAULTS
from cleave.core.databases import database_settings
from cleave.core.db import release
from cleave.core.registry import context_aliases
from cleave.messaging.models import OutboxEvent
from cleave.testing import require_server, unit

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
    assert orders["ENGINE"] == "cleave.core.backends.mysql"  # Django's MySQL backend, pooled
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


# --- connection pools ----------------------------------------------------------------------


@pytest.fixture
def no_pool_variables(monkeypatch):
    """The defaults, whatever the environment of the run says."""
    for name in list(os.environ):
        if name.startswith("DB_POOL_") or "_DB_POOL_" in name:
            monkeypatch.delenv(name)
    monkeypatch.delenv("CLEAVE_DB_CONN_MAX_AGE", raising=False)


def on_postgresql(monkeypatch, *aliases: str) -> None:
    for alias in aliases:
        name = "cleave" if alias == "default" else f"cleave_{alias}"
        monkeypatch.setenv(url_variable(alias), f"postgres://postgres@127.0.0.1:5432/{name}")


def on_mariadb(monkeypatch, *aliases: str) -> None:
    for alias in aliases:
        name = "cleave" if alias == "default" else f"cleave_{alias}"
        monkeypatch.setenv(url_variable(alias), f"mysql://root@127.0.0.1:3306/{name}")


def test_a_postgresql_alias_takes_its_connections_from_a_small_pool(
    tmp_path, monkeypatch, no_pool_variables
):
    on_postgresql(monkeypatch, "default", "users")

    databases = database_settings(["users"], data_dir=tmp_path)

    for alias in ("default", "users"):
        config = databases[alias]
        assert config["ENGINE"] == "django.db.backends.postgresql"
        assert config["OPTIONS"]["pool"] == {
            "name": alias,
            "min_size": 1,
            "max_size": 3,
            "timeout": 3.0,
            "max_idle": 600.0,  # psycopg's own default
        }
        # Django builds no pool beside persistent connections; the pool checks
        # each connection before handing it out instead
        assert config["CONN_MAX_AGE"] == 0
        assert config["CONN_HEALTH_CHECKS"] is True


def test_a_mariadb_alias_takes_its_connections_from_the_seeds_pool(
    tmp_path, monkeypatch, no_pool_variables
):
    on_postgresql(monkeypatch, "default")
    on_mariadb(monkeypatch, "orders")

    databases = database_settings(["orders"], data_dir=tmp_path)

    orders = databases["orders"]
    # at most 15, 3 kept while idle, 30 s to wait for one, 10 s idle beyond the 3
    assert orders["OPTIONS"]["pool"] == {
        "name": "orders",
        "min_size": 3,
        "max_size": 15,
        "timeout": 30.0,
        "max_idle": 10.0,
    }
    assert orders["ENGINE"] == "cleave.core.backends.mysql"  # Django's MySQL backend has no pool
    assert (orders["CONN_MAX_AGE"], orders["CONN_HEALTH_CHECKS"]) == (0, True)
    assert orders["OPTIONS"]["isolation_level"] == "read committed"
    assert databases["default"]["OPTIONS"]["pool"]["max_size"] == 3  # PostgreSQL's own default


def test_the_default_pools_keep_three_workers_well_under_a_hundred_connections():
    aliases = 1 + 6  # default and the six contexts on PostgreSQL, orders elsewhere
    web = 3 * aliases * POOL_DEFAULTS["postgresql"].max
    others = 4 * aliases  # manage.py, a relay, two Celery workers: one thread each
    assert web + others <= 100 - 3  # PostgreSQL keeps 3 for superusers


def test_the_default_mariadb_pool_keeps_four_workers_under_its_connection_limit():
    web = 4 * POOL_DEFAULTS["mysql"].max  # make run: four workers, orders alone on MariaDB
    others = 4  # manage.py, a relay, two Celery workers: one connection each
    assert web + others <= 151  # MariaDB's default max_connections


def test_each_alias_reads_its_own_pool_sizes(tmp_path, monkeypatch, no_pool_variables):
    on_postgresql(monkeypatch, "default", "users", "orders")
    monkeypatch.setenv("DB_POOL_MAX", "2")
    monkeypatch.setenv("USERS_DB_POOL_MIN", "2")
    monkeypatch.setenv("USERS_DB_POOL_MAX", "8")
    monkeypatch.setenv("USERS_DB_POOL_TIMEOUT", " 2.5 ")
    monkeypatch.setenv("USERS_DB_POOL_IDLE", "30")

    databases = database_settings(["users", "orders"], data_dir=tmp_path)

    pools = {alias: config["OPTIONS"]["pool"] for alias, config in databases.items()}
    assert pools["default"] == {
        "name": "default",
        "min_size": 1,
        "max_size": 2,
        "timeout": 3.0,
        "max_idle": 600.0,
    }
    assert pools["users"] == {
        "name": "users",
        "min_size": 2,
        "max_size": 8,
        "timeout": 2.5,
        "max_idle": 30.0,
    }
    assert pools["orders"]["max_size"] == 3


def test_a_mariadb_alias_reads_the_same_variables_as_a_postgresql_one(
    tmp_path, monkeypatch, no_pool_variables
):
    on_mariadb(monkeypatch, "default", "orders", "payments")
    monkeypatch.setenv("DB_POOL_MAX", "4")
    monkeypatch.setenv("DB_POOL_MIN", "0")
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "20")
    monkeypatch.setenv("ORDERS_DB_POOL_MIN", "5")
    monkeypatch.setenv("ORDERS_DB_POOL_TIMEOUT", "3")
    monkeypatch.setenv("ORDERS_DB_POOL_IDLE", "60")

    databases = database_settings(["orders", "payments"], data_dir=tmp_path)

    pools = {alias: config["OPTIONS"]["pool"] for alias, config in databases.items()}
    assert pools["default"] == {
        "name": "default",
        "min_size": 0,
        "max_size": 4,
        "timeout": 30.0,
        "max_idle": 10.0,
    }
    assert pools["orders"] == {
        "name": "orders",
        "min_size": 5,
        "max_size": 20,
        "timeout": 3.0,
        "max_idle": 60.0,
    }
    # what one alias sets leaves the others at the vendor's defaults
    assert pools["payments"] == {
        "name": "payments",
        "min_size": 3,
        "max_size": 15,
        "timeout": 30.0,
        "max_idle": 10.0,
    }


def test_a_maximum_below_the_default_minimum_lowers_the_minimum_with_it(
    tmp_path, monkeypatch, no_pool_variables
):
    on_mariadb(monkeypatch, "default", "orders")
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "2")

    pool = database_settings(["orders"], data_dir=tmp_path)["orders"]["OPTIONS"]["pool"]

    assert (pool["min_size"], pool["max_size"]) == (2, 2)


def test_a_pool_of_size_zero_keeps_a_persistent_connection_per_thread(
    tmp_path, monkeypatch, no_pool_variables
):
    on_postgresql(monkeypatch, "default", "users")
    on_mariadb(monkeypatch, "orders")
    monkeypatch.setenv("USERS_DB_POOL_MAX", "0")
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "0")
    monkeypatch.setenv("CLEAVE_DB_CONN_MAX_AGE", "30")

    databases = database_settings(["users", "orders"], data_dir=tmp_path)

    for alias in ("users", "orders"):
        config = databases[alias]
        assert "pool" not in config["OPTIONS"]
        assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (30, True)
    assert databases["orders"]["ENGINE"] == "django.db.backends.mysql"
    assert "pool" in databases["default"]["OPTIONS"]


def test_sqlite_aliases_have_no_pool(tmp_path, monkeypatch, no_pool_variables):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    monkeypatch.setenv("ORDERS_DB_POOL_MAX", "5")  # used once orders moves to a server

    databases = database_settings(["orders"], data_dir=tmp_path)

    for config in databases.values():
        assert "pool" not in config["OPTIONS"]
        assert (config["CONN_MAX_AGE"], config["CONN_HEALTH_CHECKS"]) == (60, True)


@pytest.mark.parametrize(
    ("variable", "raw", "message"),
    [
        ("USERS_DB_POOL_MAX", "many", "USERS_DB_POOL_MAX must be a whole number, not 'many'"),
        ("USERS_DB_POOL_MAX", "-1", "USERS_DB_POOL_MAX must be at least 0, not '-1'"),
        ("DB_POOL_MIN", "1.5", "DB_POOL_MIN must be a whole number, not '1.5'"),
        (
            "USERS_DB_POOL_MIN",
            "4",
            "USERS_DB_POOL_MIN must be at most USERS_DB_POOL_MAX (3), not 4",
        ),
        ("USERS_DB_POOL_TIMEOUT", "soon", "USERS_DB_POOL_TIMEOUT must be a number, not 'soon'"),
        ("DB_POOL_TIMEOUT", "0", "DB_POOL_TIMEOUT must be at least 0.001, not '0'"),
        ("DB_POOL_IDLE", "never", "DB_POOL_IDLE must be a number, not 'never'"),
        ("USERS_DB_POOL_IDLE", "0", "USERS_DB_POOL_IDLE must be at least 0.1, not '0'"),
        (
            "PAYMENTS_DB_POOL_IDLE",
            "inf",
            "PAYMENTS_DB_POOL_IDLE must be a finite number, not 'inf'",
        ),
        # on MariaDB, against MariaDB's default maximum
        (
            "PAYMENTS_DB_POOL_MIN",
            "16",
            "PAYMENTS_DB_POOL_MIN must be at most PAYMENTS_DB_POOL_MAX (15), not 16",
        ),
        (
            "PAYMENTS_DB_POOL_TIMEOUT",
            "-3",
            "PAYMENTS_DB_POOL_TIMEOUT must be at least 0.001, not '-3'",
        ),
        # read whatever the backend, so the mistake shows before the move to a server
        ("ORDERS_DB_POOL_MAX", "ten", "ORDERS_DB_POOL_MAX must be a whole number, not 'ten'"),
        ("ORDERS_DB_POOL_IDLE", "soon", "ORDERS_DB_POOL_IDLE must be a number, not 'soon'"),
    ],
)
def test_a_bad_pool_setting_stops_the_process_naming_the_variable(
    tmp_path, monkeypatch, no_pool_variables, variable, raw, message
):
    on_postgresql(monkeypatch, "default", "users")
    on_mariadb(monkeypatch, "payments")
    monkeypatch.delenv("ORDERS_DATABASE_URL", raising=False)
    monkeypatch.setenv(variable, raw)

    with pytest.raises(ImproperlyConfigured) as caught:
        database_settings(["users", "orders", "payments"], data_dir=tmp_path)

    assert str(caught.value) == message


def test_django_builds_the_pool_from_these_settings(tmp_path, monkeypatch, no_pool_variables):
    # no server needed: Django creates the pool closed, and it opens on first use
    monkeypatch.setenv("POOLED_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cleave_pooled")
    monkeypatch.setenv("POOLED_DB_POOL_MAX", "4")
    handler = ConnectionHandler(database_settings(["pooled"], data_dir=tmp_path))
    connection = handler["pooled"]
    try:
        pool = connection.pool
        assert (pool.name, pool.min_size, pool.max_size, pool.timeout) == ("pooled", 1, 4, 3.0)
        assert pool.closed
    finally:
        connection.close_pool()


# --- release() on PostgreSQL ---------------------------------------------------------------

POSTGRES = os.environ.get("CLEAVE_TEST_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
PROBE = "probe"  # an alias of this test's own, on the server's `postgres` database


@pytest.fixture
def probe_alias(tmp_path, monkeypatch, django_db_blocker) -> Iterator[Callable[..., str]]:
    """Add the alias `probe` on PostgreSQL to `connections`, its pool sized as asked."""
    parts = urlsplit(POSTGRES)
    require_server("PostgreSQL", parts.hostname, parts.port or 5432)

    def add(*, pool_max: int) -> str:
        monkeypatch.setenv("PROBE_DATABASE_URL", f"{POSTGRES.rstrip('/')}/postgres")
        monkeypatch.setenv("PROBE_DB_POOL_MAX", str(pool_max))
        monkeypatch.setenv("PROBE_DB_POOL_TIMEOUT", "0.5")
        config = database_settings([PROBE], data_dir=tmp_path)[PROBE]
        # Django's defaults filled in as for any alias (it insists on a `default` beside it)
        known = {"default": connections.settings["default"], PROBE: config}
        connections.settings[PROBE] = connections.configure_settings(known)[PROBE]
        return PROBE

    with django_db_blocker.unblock():
        yield add
        if PROBE in connections.settings:
            connection = connections[PROBE]
            connection.close()
            if connection.settings_dict["OPTIONS"].get("pool"):
                connection.close_pool()
            del connections[PROBE]
            del connections.settings[PROBE]


def backend_pid(alias: str) -> int:
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


def in_another_thread(alias: str) -> int | str:
    """The backend another thread is served by, or the error it gets; its connection goes back."""
    result: list[int | str] = []

    def work() -> None:
        try:
            result.append(backend_pid(alias))
        except OperationalError as exc:
            result.append(f"OperationalError: {exc}")
        finally:
            connections[alias].close()

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=10)
    return result[0]


@pytest.mark.services
def test_release_gives_the_connection_back_for_another_thread_to_use(probe_alias):
    alias = probe_alias(pool_max=1)
    mine = backend_pid(alias)
    # held by this thread, the pool's only connection is out of reach
    assert str(in_another_thread(alias)).startswith("OperationalError: couldn't get a connection")

    release(alias)

    assert connections[alias].connection is None
    assert in_another_thread(alias) == mine  # the same server session, taken from the pool
    assert backend_pid(alias) == mine  # and this thread takes it again when it needs it


@pytest.mark.services
def test_release_inside_an_atomic_block_keeps_the_transaction_and_its_connection(probe_alias):
    alias = probe_alias(pool_max=1)
    with transaction.atomic(using=alias):
        with connections[alias].cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE probe_rows (n int)")
            cursor.execute("INSERT INTO probe_rows VALUES (1)")
        held = connections[alias].connection

        release(alias)

        assert connections[alias].connection is held
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT count(*) FROM probe_rows")
            assert cursor.fetchone()[0] == 1

    release(alias)
    assert connections[alias].connection is None


@pytest.mark.services
def test_release_leaves_a_persistent_connection_open_when_the_pool_is_off(probe_alias):
    alias = probe_alias(pool_max=0)
    release(alias)  # no connection yet: nothing to do
    mine = backend_pid(alias)

    release(alias)

    assert connections[alias].connection is not None
    assert backend_pid(alias) == mine
