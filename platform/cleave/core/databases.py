"""
`DATABASES` from the environment: `default` and one alias per context,
SQLite files by default, PostgreSQL or MySQL/MariaDB (through PyMySQL) with a
connection pool per alias; each alias through the backend of its vendor that
counts queries, errors and connections (`with_query_metrics`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from cleave.core import conf
from cleave.core.registry import DJANGO_DEFAULT_ALIAS

# The pools' sizes, per process and alias (declared with the other variables,
# in cleave.core.conf.POOL_DEFAULTS), and why:
#
# PostgreSQL: three keep three gunicorn workers with all seven aliases on one
# server at 63 connections at most, leaving room under PostgreSQL's default
# max_connections of 100 (97 for other than superusers) for a manage.py, a
# relay and two Celery workers of one connection per alias each; see
# docs/configuration.md, "Databases". A thread waits for a free connection no
# longer than one attempt of a service call may last (3 s inside the 5 s
# budget), so a pool that is too small shows as a technical failure of that
# call, which is retried, and not as a step that outlived its timeout.
#
# MySQL/MariaDB: the seed's pool of the orders alias on MariaDB (at most 15, 3
# kept while idle, 30 s to wait for one, 10 s idle before one beyond the 3 is
# closed). Fifteen cover a gunicorn worker's threads and its scheduler's, and
# four workers stay at 60 under MariaDB's default max_connections of 151. The
# 30 s wait is longer than one attempt of a service call (3 s): a pool too
# small for its threads makes the callers' attempts time out before it
# answers 503 (`ORDERS_DB_POOL_TIMEOUT=3` aligns it with PostgreSQL's).

# The engines whose aliases take their connections from a pool, by vendor;
# Django's MySQL backend has none, Cleave's does (cleave.core.backends.mysql).
_POOLED = {
    "django.db.backends.postgresql": "postgresql",
    "django.db.backends.mysql": "mysql",
}

# Django's backends, counting every query, its time and errors, and new
# connections, per alias and vendor (django-prometheus's metrics; see
# cleave.core.backends for why not its backends as they are).
_COUNTING_ENGINES = {
    "django.db.backends.sqlite3": "cleave.core.backends.sqlite3",
    "django.db.backends.mysql": "cleave.core.backends.mysql",
    "django.db.backends.postgresql": "cleave.core.backends.postgresql",
}


def database_settings(labels: list[str], *, data_dir: Path) -> dict[str, dict[str, Any]]:
    """
    Build DATABASES: `default` plus one alias per context label.

    `DATABASE_URL` configures `default` and `<LABEL>_DATABASE_URL` each context
    alias; unset, each is an SQLite file in `data_dir`. A PostgreSQL or
    MySQL/MariaDB alias takes its connections from a pool of its own in each
    process (`_pool_options()`), so that processes x pool size x aliases
    bounds what the server sees: PostgreSQL's through Django's psycopg pool,
    MySQL's through Cleave's backend (`cleave.core.backends.mysql`, set here).
    SQLite, and an alias whose pool is off, keep one connection per thread
    across requests for `CLEAVE_DB_CONN_MAX_AGE` seconds (default 60; 0 closes
    them after every request), checked before reuse.
    """

    def one(alias: str) -> dict[str, Any]:
        if alias == DJANGO_DEFAULT_ALIAS:
            url = conf.value("DATABASE_URL")
        else:
            url = conf.value("<LABEL>_DATABASE_URL", label=alias)
        return alias_settings(alias, url or f"sqlite:///{data_dir / f'{alias}.sqlite3'}")

    databases = {DJANGO_DEFAULT_ALIAS: one(DJANGO_DEFAULT_ALIAS)}
    for label in labels:
        databases[label] = one(label)
    return databases


def alias_settings(alias: str, url: str) -> dict[str, Any]:
    """
    The settings of `alias` at `url`, as `database_settings()` builds them
    (the pool, the SQLite pragmas, PyMySQL); also used when a context's
    alias follows a move (`cleave.core.locations`).
    """
    max_age = conf.value("CLEAVE_DB_CONN_MAX_AGE")
    config = dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=max_age > 0)
    engine = config["ENGINE"]
    options = config.setdefault("OPTIONS", {})
    # read for every alias, so that a bad value stops the process even
    # before the alias moves to a server
    pool = _pool_options(alias, _POOLED.get(engine))
    if engine == "django.db.backends.sqlite3":
        _private_file(config["NAME"])
        # WAL lets readers run beside the writer; IMMEDIATE takes the write
        # lock up front so two writers never deadlock upgrading a read lock.
        options.setdefault(
            "init_command",
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        )
        options.setdefault("transaction_mode", "IMMEDIATE")
        options.setdefault("timeout", 20)
    elif engine == "django.db.backends.mysql":
        _use_pymysql()
        options.setdefault("charset", "utf8mb4")
        options.setdefault("isolation_level", "read committed")
        config.setdefault("TEST", {}).setdefault("CHARSET", "utf8mb4")
        config["TEST"].setdefault("COLLATION", "utf8mb4_unicode_ci")
        if pool is not None:
            config["ENGINE"] = "cleave.core.backends.mysql"  # Django's has no pool
    if pool is not None:
        options["pool"] = pool
        # Django refuses persistent connections beside a pool: a connection
        # goes back to the pool when Django closes it, at the end of each
        # request (or earlier, `cleave.db.release()`). The pool checks a
        # connection before handing it out, so one the server dropped is
        # replaced instead of failing the request.
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = True
    return config


def with_query_metrics(databases: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """
    `databases` with each alias served by the counting backend of its vendor,
    Django's own underneath (the pool, the SQLite pragmas, PyMySQL all apply).
    """
    return {
        alias: {**config, "ENGINE": _COUNTING_ENGINES.get(config["ENGINE"], config["ENGINE"])}
        for alias, config in databases.items()
    }


def _pool_options(alias: str, vendor: str | None) -> dict[str, Any] | None:
    """
    The pool of an alias on a `vendor`'s server ("postgresql", "mysql"), from
    `<LABEL>_DB_POOL_MAX`, `_MIN`, `_TIMEOUT` and `_IDLE` (`DB_POOL_*` for
    `default`), each unset one the vendor's default (`conf.POOL_DEFAULTS`; the
    default minimum at most the maximum given); None when `_MAX` is 0 or the
    vendor pools nothing (SQLite).

    The pool holds at most `max_size` connections in each process, whatever
    its number of threads; a thread that finds them all in use waits up to
    `timeout` seconds, then gets `OperationalError` (a technical failure,
    retried by sagas, 503 at the API) rather than one connection too many.
    Connections beyond `min_size` idle for `max_idle` seconds are closed. The
    same keys serve psycopg's pool and Cleave's MySQL one.
    """
    if alias == DJANGO_DEFAULT_ALIAS:
        variables = ("DB_POOL_MAX", "DB_POOL_MIN", "DB_POOL_TIMEOUT", "DB_POOL_IDLE")
    else:
        variables = (
            "<LABEL>_DB_POOL_MAX",
            "<LABEL>_DB_POOL_MIN",
            "<LABEL>_DB_POOL_TIMEOUT",
            "<LABEL>_DB_POOL_IDLE",
        )
    names = dict(zip(("max", "min", "timeout", "idle"), variables, strict=True))
    given = {field: conf.value(name, label=alias) for field, name in names.items()}
    defaults = conf.POOL_DEFAULTS.get(vendor or "")
    if defaults is None:
        return None
    value = {
        field: getattr(defaults, field) if given[field] is None else given[field] for field in names
    }
    if value["max"] == 0:
        return None
    if given["min"] is None:
        value["min"] = min(value["min"], value["max"])  # a smaller pool, a smaller minimum
    if value["min"] > value["max"]:
        high, low = (conf.BY_NAME[names[field]].variable(alias) for field in ("max", "min"))
        raise ImproperlyConfigured(
            f"{low} must be at most {high} ({value['max']}), not {value['min']}"
        )
    return {
        "name": alias,
        "min_size": value["min"],
        "max_size": value["max"],
        "timeout": float(value["timeout"]),
        "max_idle": float(value["idle"]),
    }


def _private_file(name: str) -> None:
    """
    An SQLite file readable by its owner only (0600: the users alias holds
    password hashes); SQLite gives its -wal and -shm files the same mode.
    Created empty when missing (SQLite takes an empty file as an empty
    database); an existing one that others could read is made private.
    """
    if not name or name == ":memory:" or name.startswith("file:"):
        return
    path = Path(name)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077 and path.stat().st_uid == os.getuid():
            path.chmod(mode & 0o700)


def _use_pymysql() -> None:
    """Serve Django's MySQL backend with PyMySQL, so no C client library is needed."""
    # imported only when an alias is on MySQL or MariaDB: it installs itself
    # as MySQLdb for the whole process
    import pymysql

    pymysql.install_as_MySQLdb()
