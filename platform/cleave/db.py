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
take part in the caller's transaction and in every execute wrapper.

Written by hand because no library offers this for Django; everything else
in the project goes through the ORM.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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


def _column_values(model: type[Model], values: Mapping[str, Any]) -> dict[str, Any]:
    """Every concrete, non-auto column: given, else its default (auto_now fields: now)."""
    complete: dict[str, Any] = {}
    for field in model._meta.concrete_fields:
        if field.name in values:
            complete[field.name] = values[field.name]
        elif field.attname in values:
            complete[field.name] = values[field.attname]
        elif field is model._meta.auto_field:
            continue  # an auto-increment key: the database assigns it
        elif getattr(field, "auto_now", False) or getattr(field, "auto_now_add", False):
            complete[field.name] = timezone.now()
        else:
            complete[field.name] = field.get_default()
    unknown = (
        set(values)
        - {f.name for f in model._meta.concrete_fields}
        - {f.attname for f in model._meta.concrete_fields}
    )
    if unknown:
        raise ValueError(f"{model.__name__} has no columns {sorted(unknown)}")
    return complete


@cache
def _insert_sql(
    model: type[Model], alias: str, names: tuple[str, ...], rows: int, ignore: bool, returning: bool
) -> tuple[str, bool]:
    """(SQL, whether it returns the primary key itself)."""
    connection = connections[alias]
    ops = connection.ops
    quote = ops.quote_name
    fields = [_field(model, name) for name in names]
    on_conflict = OnConflict.IGNORE if ignore else None
    row = "(" + ", ".join(["%s"] * len(fields)) + ")"
    sql = (
        f"{ops.insert_statement(on_conflict=on_conflict)} {quote(model._meta.db_table)} "
        f"({', '.join(quote(f.column) for f in fields)}) VALUES {', '.join([row] * rows)}"
    )
    suffix = ops.on_conflict_suffix_sql(fields, on_conflict, None, None)
    if suffix:
        sql += " " + suffix
    returns = False
    if returning and connection.features.can_return_columns_from_insert:
        returning_sql, _params = ops.return_insert_columns([model._meta.pk])
        if returning_sql:
            sql += " " + returning_sql
            returns = True
    return sql, returns


def _params(model: type[Model], alias: str, names: Sequence[str], values: Mapping[str, Any]):
    connection = connections[alias]
    return [
        _field(model, name).get_db_prep_save(values[name], connection=connection) for name in names
    ]


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
    complete = _column_values(model, values)
    names = tuple(complete)
    sql, returns = _insert_sql(model, using, names, 1, ignore_conflicts, returning_pk)
    connection = connections[using]
    with connection.cursor() as cursor:
        cursor.execute(sql, _params(model, using, names, complete))
        if ignore_conflicts:
            return cursor.rowcount == 1
        if not returning_pk:
            return None
        if returns:
            return connection.ops.fetch_returned_insert_columns(cursor, [])[0]
        return connection.ops.last_insert_id(cursor, model._meta.db_table, model._meta.pk.column)


def insert_many(model: type[Model], using: str, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert several rows with one statement; every row must name the same columns."""
    completed = [_column_values(model, row) for row in rows]
    if not completed:
        return 0
    names = tuple(completed[0])
    if any(tuple(row) != names for row in completed[1:]):
        raise ValueError("insert_many() needs the same columns in every row")
    sql, _ = _insert_sql(model, using, names, len(completed), False, False)
    params: list[Any] = []
    for row in completed:
        params.extend(_params(model, using, names, row))
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
    return len(completed)


@cache
def _update_sql(
    model: type[Model],
    alias: str,
    assigned: tuple[tuple[str, bool], ...],
    conditions: tuple[tuple[str, int], ...],
) -> str:
    """`assigned`: (field, is an Add); `conditions`: (field, 0 for =, n for IN of n values)."""
    quote = connections[alias].ops.quote_name
    sets = []
    for name, is_add in assigned:
        column = quote(_field(model, name).column)
        sets.append(f"{column} = {column} + %s" if is_add else f"{column} = %s")
    wheres = []
    for name, many in conditions:
        column = quote(_field(model, name).column)
        wheres.append(f"{column} IN ({', '.join(['%s'] * many)})" if many else f"{column} = %s")
    # identifiers come from model metadata, quoted by the backend; values are parameters
    return (
        f"UPDATE {quote(model._meta.db_table)} SET {', '.join(sets)} "  # noqa: S608
        f"WHERE {' AND '.join(wheres)}"
    )


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
    if not where:
        raise ValueError("update() needs a condition")
    connection = connections[using]
    assigned = tuple((name, isinstance(value, Add)) for name, value in values.items())
    conditions: list[tuple[str, int]] = []
    params: list[Any] = []
    for name, value in values.items():
        field = _field(model, name)
        raw = value.amount if isinstance(value, Add) else value
        params.append(field.get_db_prep_save(raw, connection=connection))
    for name, value in where.items():
        field = _field(model, name)
        if isinstance(value, list | tuple | set | frozenset):
            items = list(value)
            if not items:
                return 0
            conditions.append((name, len(items)))
            params.extend(field.get_db_prep_value(v, connection, prepared=False) for v in items)
        else:
            conditions.append((name, 0))
            params.append(field.get_db_prep_value(value, connection, prepared=False))
    sql = _update_sql(model, using, assigned, tuple(conditions))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
