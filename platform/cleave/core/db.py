"""
Prepared statements for the platform's hot paths: the outbox, the inbox and
saga progress.

The ORM compiles every query anew, and for the few statements the platform
runs on every event and every saga step that compilation costs several times
what the database spends on the statement itself. Here each statement's SQL is
built once per model, column list and database vendor, from the model's
metadata and the backend's own operations (quoting, insert-or-ignore,
RETURNING), and its parameters are prepared by the model's fields exactly as
the ORM prepares them. Statements run through `connection.cursor()`, so they
take part in the caller's transaction and in every execute wrapper. A
statement can also be prepared first and run later (`prepare_insert()`,
`prepare_update()`, `Statement.run()`), so that a transaction holds its locks
only while the statements execute.

`release()` hands a thread's pooled connection back to its pool between two
pieces of work, instead of at the end of the request.

Written by hand because no library offers this for Django; everything else
in the project goes through the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.db import connections
from django.db.models import Field, Model
from django.db.models.constants import OnConflict
from django.utils import timezone


@dataclass(frozen=True)
class Add:
    """`column = column + amount` in an `update()`."""

    amount: int = 1


def _field(model: type[Model], name: str) -> Field:
    field = model._meta.get_field(name)
    if not field.concrete:
        raise ValueError(f"{model.__name__}.{name} is not a column")
    return field


_NOW = object()  # a column filled with the current time (auto_now fields)


@dataclass(frozen=True)
class _InsertPlan:
    sql: str
    returns_pk: bool
    # per column: the key to read from the given values (None: use `default`) and
    # the field, whose get_db_prep_save() prepares the value as the ORM would
    columns: tuple[tuple[str | None, Field, Any], ...]


@cache
def _insert_plan(
    model: type[Model],
    alias: str,
    vendor: str,  # part of the key: an alias that moves may change vendor
    given: tuple[str, ...],
    rows: int,
    ignore: bool,
    returning: bool,
) -> _InsertPlan:
    """Which columns an insert of `given` writes, where each value comes from, and its SQL."""
    meta = model._meta
    known = {f.name for f in meta.concrete_fields} | {f.attname for f in meta.concrete_fields}
    unknown = set(given) - known
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}")
    columns = []
    for field in meta.concrete_fields:
        if field.name in given:
            columns.append((field.name, field, None))
        elif field.attname in given:
            columns.append((field.attname, field, None))
        elif field is meta.auto_field:
            continue  # an auto-increment key: the database assigns it
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            columns.append((None, field, _NOW))
        else:
            columns.append((None, field, field))  # the field's default, made per row
    connection = connections[alias]
    ops = connection.ops
    quote = ops.quote_name
    fields = [field for _key, field, _default in columns]
    on_conflict = OnConflict.IGNORE if ignore else None
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"{ops.insert_statement(on_conflict=on_conflict)} {quote(meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES {', '.join([row] * rows)}"
    )
    suffix = ops.on_conflict_suffix_sql(fields, on_conflict, None, None)
    if suffix:
        sql += " " + suffix
    returns = False
    if returning and connection.features.can_return_columns_from_insert:
        returning_sql, _params = ops.return_insert_columns([meta.pk])
        if returning_sql:
            sql += " " + returning_sql
            returns = True
    return _InsertPlan(sql=sql, returns_pk=returns, columns=tuple(columns))


def _row_params(plan: _InsertPlan, values: Mapping[str, Any], connection) -> list[Any]:
    params = []
    for key, field, default in plan.columns:
        if key is not None:
            value = values[key]
        elif default is _NOW:
            value = timezone.now()
        else:
            value = field.get_default()
        params.append(field.get_db_prep_save(value, connection=connection))
    return params


@dataclass(frozen=True)
class Statement:
    """
    A statement with its parameters prepared, to run later: built before a
    transaction opens, it leaves the transaction (and, on SQLite, the
    database's write lock) only the execution itself.
    """

    using: str
    sql: str | None  # None: the statement matches no row and is not sent
    params: list[Any]
    kind: str  # "update", "insert", "insert_ignore" or "insert_pk"
    model: type[Model]
    returns_pk: bool = False

    def run(self) -> Any:
        """
        Execute in the caller's transaction, if any. An update returns the
        rows it changed; an insert None, or whether it inserted the row
        (`ignore_conflicts`), or the new primary key (`returning_pk`).
        """
        if self.sql is None:
            return 0
        connection = connections[self.using]
        with connection.cursor() as cursor:
            cursor.execute(self.sql, self.params)
            if self.kind == "update":
                return cursor.rowcount
            if self.kind == "insert_ignore":
                return cursor.rowcount == 1
            if self.kind == "insert":
                return None
            if self.returns_pk:
                return connection.ops.fetch_returned_insert_columns(cursor, [])[0]
            meta = self.model._meta
            return connection.ops.last_insert_id(cursor, meta.db_table, meta.pk.column)


def prepare_insert(
    model: type[Model],
    using: str,
    values: Mapping[str, Any],
    *,
    ignore_conflicts: bool = False,
    returning_pk: bool = False,
) -> Statement:
    """`insert()`, built and prepared now, run by `Statement.run()`."""
    plan = _insert_plan(
        model, using, connections[using].vendor, tuple(values), 1, ignore_conflicts, returning_pk
    )
    kind = "insert_ignore" if ignore_conflicts else "insert_pk" if returning_pk else "insert"
    return Statement(
        using=using,
        sql=plan.sql,
        params=_row_params(plan, values, connections[using]),
        kind=kind,
        model=model,
        returns_pk=plan.returns_pk,
    )


def insert(
    model: type[Model],
    using: str,
    values: Mapping[str, Any],
    *,
    ignore_conflicts: bool = False,
    returning_pk: bool = False,
) -> Any:
    """
    Insert one row; columns not given take their defaults.

    With `ignore_conflicts`, a row that breaks a unique constraint is skipped:
    returns whether it was inserted. With `returning_pk`, returns the new
    primary key (for auto-increment keys). Otherwise returns None.
    """
    return prepare_insert(
        model, using, values, ignore_conflicts=ignore_conflicts, returning_pk=returning_pk
    ).run()


def insert_many(model: type[Model], using: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert several rows with one statement; every row must name the same columns."""
    rows = list(rows)
    if not rows:
        return 0
    given = tuple(rows[0])
    if any(tuple(row) != given for row in rows[1:]):
        raise ValueError("insert_many() needs the same columns in every row")
    plan = _insert_plan(model, using, connections[using].vendor, given, len(rows), False, False)
    connection = connections[using]
    params: list[Any] = []
    for row in rows:
        params.extend(_row_params(plan, row, connection))
    with connection.cursor() as cursor:
        cursor.execute(plan.sql, params)
    return len(rows)


_MANY = list | tuple | set | frozenset


def _conditions(where: Mapping[str, Any]) -> tuple[tuple[str, int], ...] | None:
    """The shape of a WHERE: (field, 0 for =, n for IN of n values); None if it matches nothing."""
    if not where:
        raise ValueError("a condition is needed")
    shape = []
    for name, value in where.items():
        if isinstance(value, _MANY):
            if not value:
                return None  # an empty membership matches no row
            shape.append((name, len(value)))
        else:
            shape.append((name, 0))
    return tuple(shape)


def _where_sql(
    model: type[Model], alias: str, conditions: tuple[tuple[str, int], ...]
) -> tuple[str, tuple[Field, ...]]:
    quote = connections[alias].ops.quote_name
    wheres, fields = [], []
    for name, many in conditions:
        field = _field(model, name)
        column = quote(field.column)
        wheres.append(f"{column} IN ({', '.join(['%s'] * many)})" if many else f"{column} = %s")
        fields.append(field)
    return " AND ".join(wheres), tuple(fields)


def _where_params(fields: tuple[Field, ...], where: Mapping[str, Any], connection) -> list[Any]:
    params: list[Any] = []
    for field, value in zip(fields, where.values(), strict=True):
        if isinstance(value, _MANY):
            params.extend(field.get_db_prep_value(v, connection, prepared=False) for v in value)
        else:
            params.append(field.get_db_prep_value(value, connection, prepared=False))
    return params


@cache
def _update_plan(
    model: type[Model],
    alias: str,
    vendor: str,
    assigned: tuple[tuple[str, bool], ...],
    conditions: tuple[tuple[str, int], ...],
) -> tuple[str, tuple[Field, ...], tuple[Field, ...]]:
    """(SQL, assigned fields, condition fields) of an update; `assigned`: (field, is an Add)."""
    quote = connections[alias].ops.quote_name
    sets, set_fields = [], []
    for name, is_add in assigned:
        field = _field(model, name)
        column = quote(field.column)
        sets.append(f"{column} = {column} + %s" if is_add else f"{column} = %s")
        set_fields.append(field)
    where, where_fields = _where_sql(model, alias, conditions)
    # identifiers come from model metadata, quoted by the backend; values are parameters
    sql = f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} WHERE {where}"  # noqa: S608
    return sql, tuple(set_fields), where_fields


def prepare_update(
    model: type[Model],
    using: str,
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any],
) -> Statement:
    """`update()`, built and prepared now, run by `Statement.run()`."""
    conditions = _conditions(where)
    if conditions is None:
        return Statement(using=using, sql=None, params=[], kind="update", model=model)
    assigned = tuple((name, isinstance(value, Add)) for name, value in values.items())
    sql, set_fields, where_fields = _update_plan(
        model, using, connections[using].vendor, assigned, conditions
    )
    connection = connections[using]
    params: list[Any] = [
        field.get_db_prep_save(value.amount if isinstance(value, Add) else value, connection)
        for field, value in zip(set_fields, values.values(), strict=True)
    ]
    params += _where_params(where_fields, where, connection)
    return Statement(using=using, sql=sql, params=params, kind="update", model=model)


def update(
    model: type[Model],
    using: str,
    values: Mapping[str, Any],
    *,
    where: Mapping[str, Any],
) -> int:
    """
    `UPDATE ... SET values WHERE where`; return the number of rows changed.

    A value may be `Add(n)` (`column = column + n`). A condition is equality,
    or membership when its value is a list, tuple or set (an empty one
    matches nothing). `auto_now` fields are not touched unless given.
    """
    return prepare_update(model, using, values, where=where).run()


@cache
def _values_plan(
    model: type[Model], alias: str, vendor: str, name: str, conditions: tuple[tuple[str, int], ...]
) -> tuple[str, Field, tuple[Field, ...]]:
    quote = connections[alias].ops.quote_name
    field = _field(model, name)
    where, where_fields = _where_sql(model, alias, conditions)
    # identifiers come from model metadata, quoted by the backend; values are parameters
    sql = f"SELECT {quote(field.column)} FROM {quote(model._meta.db_table)} WHERE {where}"  # noqa: S608
    return sql, field, where_fields


def values(model: type[Model], using: str, name: str, *, where: Mapping[str, Any]) -> list[Any]:
    """
    `SELECT name ... WHERE where`: one column of the matching rows, as the
    field's Python values (conditions as in `update()`).
    """
    conditions = _conditions(where)
    if conditions is None:
        return []
    sql, field, where_fields = _values_plan(
        model, using, connections[using].vendor, name, conditions
    )
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(sql, _where_params(where_fields, where, connection))
        return [field.to_python(row[0]) for row in cursor.fetchall()]


def release(alias: str) -> None:
    """
    Give this thread's connection of `alias` back to its pool now.

    A pooled connection (PostgreSQL or MySQL/MariaDB with `OPTIONS["pool"]`)
    goes back to the pool only when Django closes it, and for a request
    thread that is when the request ends. A checkout's request calls several
    contexts in process, one after the other, and their event handlers run
    in the same thread: without
    this, one request would hold a connection of every alias it touched until
    its last byte is sent, and a pool sized below the number of threads (it
    must be, to keep processes x threads x aliases under the server's
    `max_connections`) would leave threads waiting for connections that sit
    idle in other requests. Called after each in-process service call and
    event handler, a connection is held only while it is used.

    Nothing happens inside an atomic block of `alias` or while autocommit is
    off (closing would end the caller's transaction), when the thread holds no
    connection, or when the alias has no pool: SQLite and
    `<LABEL>_DB_POOL_MAX=0` keep their persistent connection, which is reused,
    not shared.
    """
    connection = connections[alias]
    if (
        connection.connection is None
        or connection.in_atomic_block
        or not connection.autocommit
        or not connection.settings_dict["OPTIONS"].get("pool")
    ):
        return
    connection.close()


def forget_plans() -> None:
    """Forget every prepared statement (an alias moved to another vendor: cleave.core.locations)."""
    _insert_plan.cache_clear()
    _update_plan.cache_clear()
    _values_plan.cache_clear()
