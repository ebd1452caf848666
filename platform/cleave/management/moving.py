"""
Moving a context's alias to another database while the system serves
(`manage.py move_context`).

1. **Check**, changing nothing: the label is a context this process serves;
   the target is a PostgreSQL or MySQL/MariaDB database, another one than
   where the context is, reachable, empty (or holding only this context's
   tables without rows, or what an interrupted move of it left), and with
   room for the alias when its server is on this host; the source holds no
   table the move would leave behind. `Refused` says why otherwise.
2. **Migrate** the target: the alias's migrations, run on a connection to the
   target under the alias's own name, so that the router places the tables
   as for the alias and data migrations write to the target.
3. **Freeze** the source: a trigger on each of its tables refuses every write
   with `cleave.core.locations.MOVED`, and a `cleave_moved` table says where
   the context went. Creating the triggers waits for the transactions that
   wrote those tables to end, so from then on the source holds everything
   committed and nothing more can be. Writers meet `ContextMoved`, a
   technical failure: the API answers 503 with `Retry-After`, sagas and
   handlers retry, reads go on. Other contexts are not touched.
4. **Copy** every table of the alias (the context's and the platform's:
   outbox, deliveries, inbox, dead letters, sagas and their step log, token
   revocations) in one transaction on the target: each row's values read
   through the ORM and written as the target's vendor takes them, keys kept,
   sequences moved past them.
5. **Verify** each table: its row count and a SHA-256 of its rows (in key
   order, each value in one canonical form) equal on both sides.
6. **Record** the new location in `default` (the URL sealed, the epoch one
   higher) with the journal's `moved`; every process follows within
   `locations.POLL` seconds or at its next write (`cleave.core.locations`).
   The pause is from 3 to 6, reported, kept in the journal and in
   `cleave_context_move_pause_seconds`.

A failure or SIGTERM in 3-5 drops the triggers: the source serves again and
the journal says `failed`. After SIGKILL there, the source stays frozen
(reads served, writes refused, never two locations serving) and the journal
says `frozen`: running the command again finishes the move, to that target
or another, and `--release` unfreezes the source instead. The old database is
left as it was, its tables and rows untouched, marked as moved; moving back
is the same command towards a fresh database.

Written by hand: the tools that copy between servers (pgloader, pg_dump,
mysqldump) each know one pair of vendors and nothing of the alias's tables,
the freeze or the processes that follow.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from time import perf_counter
from typing import Any
from uuid import UUID

import dj_database_url
from django.apps import apps
from django.core.management.color import no_style
from django.db import DatabaseError, connections, router, transaction
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Model
from django.db.utils import load_backend
from django.utils import timezone

from cleave.core import locations
from cleave.core.databases import alias_settings
from cleave.core.moves import ContextLocation, ContextMove
from cleave.core.registry import DJANGO_DEFAULT_ALIAS, all_contexts

MARKER = "cleave_moved"
_TARGETS = frozenset({"postgresql", "mysql"})  # Django's vendor names of the servers
_BATCH = 1000


class Refused(Exception):
    """The move cannot be made; nothing was changed (or what was, was undone)."""


@dataclass
class Table:
    model: type[Model]
    rows: int = 0

    @property
    def name(self) -> str:
        return self.model._meta.db_table


@dataclass
class Move:
    label: str
    url: str
    source: Any  # the alias's connection, where it is now
    target: Any  # a connection to the target, under the alias's name
    tables: list[Table]
    resuming: ContextMove | None = None  # an interrupted move of this label
    size: int | None = None
    free: int | None = None
    timings: dict[str, float] = field(default_factory=dict)
    journal: ContextMove | None = None


# --- 1. checks -----------------------------------------------------------------------


def prepare(label: str, url: str) -> Move:
    """Check that `label` can move to `url`; `Refused` with the reason when it cannot."""
    alias = _alias_of(label)
    source = connections[alias]
    try:
        config = dj_database_url.parse(url)
    except Exception as exc:  # an unknown scheme, a malformed URL
        raise Refused(f"--to is not a database URL ({exc})") from None
    vendor = config["ENGINE"].rsplit(".", 1)[-1]
    if vendor not in _TARGETS:
        raise Refused(
            f"--to must be a PostgreSQL or MySQL/MariaDB database (postgres://, mysql://), "
            f"not {vendor}"
        )
    if not config.get("NAME"):
        raise Refused("--to names no database")
    if _same_database(source.settings_dict, config):
        raise Refused(f"{label} is already at {locations.shown(url)}")
    target = _connect(alias, url)
    tables = [Table(model) for model in alias_models(alias)]
    move = Move(label, url, source, target, tables)
    move.resuming = _unfinished(label)
    _check_source(move)
    _check_target(move)
    _check_space(move)
    return move


def _alias_of(label: str) -> str:
    """The alias of context `label`, where this process now finds it; `Refused` if none."""
    contexts = {cfg.label: cfg for cfg in all_contexts()}
    if label not in contexts:
        known = ", ".join(sorted(contexts)) or "none"
        raise Refused(f"{label!r} is not a context served by this process (served: {known})")
    locations.follow(force=True)
    return contexts[label].database


def _unfinished(label: str) -> ContextMove | None:
    """The journal of `label`'s latest move that neither finished nor failed."""
    unfinished = [ContextMove.State.COPYING, ContextMove.State.FROZEN]
    moves = ContextMove.objects.filter(label=label, state__in=unfinished)
    return moves.order_by("-started_at").first()


def alias_models(alias: str) -> list[type[Model]]:
    """The models whose tables live in `alias`, in table order."""
    found = [
        model
        for model in apps.get_models(include_auto_created=True)
        if model._meta.managed
        and not model._meta.proxy
        and router.allow_migrate_model(alias, model)
    ]
    return sorted(found, key=lambda model: model._meta.db_table)


def _same_database(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def key(config: dict[str, Any]) -> tuple:
        vendor = config["ENGINE"].rsplit(".", 1)[-1]
        host = config.get("HOST") or "localhost"
        host = "localhost" if host in ("127.0.0.1", "::1") else host
        return vendor, host, str(config.get("PORT") or ""), config.get("NAME")

    return key(a) == key(b)


def _connect(alias: str, url: str) -> Any:
    """A connection of its own to `url`, under `alias`'s name (no pool)."""
    config = alias_settings(alias, url)
    config["OPTIONS"].pop("pool", None)
    config["CONN_MAX_AGE"] = 0
    if config["ENGINE"] == "cleave.core.backends.mysql":
        config["ENGINE"] = "django.db.backends.mysql"
    config = locations.complete(alias, config)
    wrapper = load_backend(config["ENGINE"]).DatabaseWrapper(config, alias)
    try:
        wrapper.ensure_connection()
    except Exception as exc:
        raise Refused(f"cannot reach {locations.shown(url)}: {_first_line(exc)}") from None
    return wrapper


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _table_names(connection: Any) -> set[str]:
    with connection.cursor() as cursor:
        names = connection.introspection.table_names(cursor)
    return {name for name in names if not name.startswith("sqlite_")}


def _check_source(move: Move) -> None:
    known = {table.name for table in move.tables} | {"django_migrations", MARKER}
    present = _table_names(move.source)
    missing = sorted({table.name for table in move.tables} - present)
    if missing:
        raise Refused(
            f"{move.label}'s database lacks {', '.join(missing)}: run `manage.py migrate_all` first"
        )
    unknown = sorted(present - known)
    if unknown:
        raise Refused(
            f"{move.label}'s database holds tables no model of it declares "
            f"({', '.join(unknown)}); the move would leave them behind"
        )
    if MARKER in present and move.resuming is None:
        raise Refused(
            f"{move.label}'s database is marked as moved ({MARKER}) but no move of it is "
            "unfinished; it is not where the context lives"
        )


def _check_target(move: Move) -> None:
    ours = {table.name for table in move.tables} | {"django_migrations"}
    present = _table_names(move.target)
    foreign = sorted(present - ours)
    if foreign:
        raise Refused(
            f"{locations.shown(move.url)} is not empty: it holds {', '.join(foreign[:5])}"
            + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        )
    resuming_here = move.resuming is not None and move.resuming.target == locations.shown(move.url)
    if resuming_here:
        return  # what the interrupted move copied is replaced
    qn = move.target.ops.quote_name
    with move.target.cursor() as cursor:
        for table in move.tables:
            if table.name in present:
                cursor.execute(f"SELECT 1 FROM {qn(table.name)} LIMIT 1")  # noqa: S608
                if cursor.fetchone():
                    raise Refused(f"{locations.shown(move.url)} already holds rows in {table.name}")


def _check_space(move: Move) -> None:
    """The alias's size, and the target's free space when its server runs on this host."""
    move.size = _size(move.source)
    move.free = _free_space(move.target)
    if move.size is not None and move.free is not None and move.free < 2 * move.size:
        raise Refused(
            f"{locations.shown(move.url)} has {mib(move.free)} free on its disk; "
            f"{move.label} takes {mib(move.size)} (twice that is needed with indexes and logs)"
        )


def _size(connection: Any) -> int | None:
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return pages * cursor.fetchone()[0]
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT COALESCE(SUM(data_length + index_length), 0) "
                "FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
            return int(cursor.fetchone()[0])
    return None


def _free_space(connection: Any) -> int | None:
    """Free bytes under the target server's data directory, when it is on this host and readable."""
    host = connection.settings_dict.get("HOST") or "localhost"
    if host not in ("localhost", "127.0.0.1", "::1") and not host.startswith("/"):
        return None
    query = {
        "postgresql": "SELECT setting FROM pg_settings WHERE name = 'data_directory'",
        "mysql": "SELECT @@datadir",
    }.get(connection.vendor)
    if query is None:
        return None
    try:
        with connection.cursor() as cursor:
            cursor.execute(query)
            row = cursor.fetchone()
        return shutil.disk_usage(row[0]).free if row and row[0] else None
    except (DatabaseError, OSError):  # not a superuser, or another host's path
        return None


def mib(size: int) -> str:
    """`size` bytes as the command prints them."""
    return f"{size / 2**20:.1f} MiB"


# --- 2. migrate ----------------------------------------------------------------------


class _AsAlias:
    """This thread's connection of `alias` is `wrapper` while inside."""

    def __init__(self, alias: str, wrapper: Any) -> None:
        self.alias, self.wrapper = alias, wrapper

    def __enter__(self) -> Any:
        self.saved = getattr(connections._connections, self.alias, None)
        setattr(connections._connections, self.alias, self.wrapper)
        return self.wrapper

    def __exit__(self, *exc: Any) -> None:
        if self.saved is None:
            delattr(connections._connections, self.alias)
        else:
            setattr(connections._connections, self.alias, self.saved)


def migrate(move: Move) -> int:
    """Apply the alias's migrations to the target; how many were applied."""
    with _AsAlias(move.source.alias, move.target):
        executor = MigrationExecutor(move.target)
        targets = executor.loader.graph.leaf_nodes()
        plan = executor.migration_plan(targets)
        if plan:
            executor.migrate(targets, plan=plan)
    return len(plan)


# --- 3. freeze -----------------------------------------------------------------------


def _trigger(table: str, op: str) -> str:
    name = f"cleave_moved_{table}_{op.lower()}"
    if len(name) > 60:  # MySQL's limit is 64
        name = f"cleave_moved_{hashlib.sha256(table.encode()).hexdigest()[:16]}_{op.lower()}"
    return name


_OPS = ("INSERT", "UPDATE", "DELETE")


def _freeze_statements(
    connection: Any, tables: list[str], label: str, target: str
) -> list[str | tuple[str, list]]:
    qn = connection.ops.quote_name
    message = f"{locations.MOVED}: {label}"
    marker = (
        f"CREATE TABLE IF NOT EXISTS {MARKER} (label VARCHAR(100) NOT NULL, "
        f"moved_to VARCHAR(500) NOT NULL, frozen_at VARCHAR(40) NOT NULL)"
    )
    record = (
        f"INSERT INTO {MARKER} (label, moved_to, frozen_at) VALUES (%s, %s, %s)",  # noqa: S608
        [label, target, timezone.now().isoformat()],
    )
    if connection.vendor == "sqlite":
        statements = [
            f"CREATE TRIGGER IF NOT EXISTS {_trigger(t, op)} BEFORE {op} ON {qn(t)} "
            f"BEGIN SELECT RAISE(ABORT, '{message}'); END"
            for t in tables
            for op in _OPS
        ]
    elif connection.vendor == "postgresql":
        statements = [
            "SET LOCAL lock_timeout = '10s'",
            "CREATE OR REPLACE FUNCTION cleave_refuse_moved() RETURNS trigger LANGUAGE plpgsql "
            f"AS $$ BEGIN RAISE EXCEPTION '{message}' USING ERRCODE = '55000'; END $$",
        ]
        for t in tables:
            statements += [
                f"DROP TRIGGER IF EXISTS cleave_moved ON {qn(t)}",
                f"CREATE TRIGGER cleave_moved BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE "
                f"ON {qn(t)} FOR EACH STATEMENT EXECUTE FUNCTION cleave_refuse_moved()",
            ]
    else:  # mysql
        statements = [
            f"CREATE TRIGGER IF NOT EXISTS {_trigger(t, op)} BEFORE {op} ON {qn(t)} "
            f"FOR EACH ROW SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'"
            for t in tables
            for op in _OPS
        ]
    return [marker, record, *statements]


def freeze(move: Move) -> None:
    """Make the source refuse every write to the alias's tables (waits for writers to finish)."""
    statements = _freeze_statements(
        move.source, [t.name for t in move.tables], move.label, locations.shown(move.url)
    )
    if move.source.vendor == "mysql":  # DDL commits by itself there
        _execute(move.source, statements)
        return
    with transaction.atomic(using=move.source.alias):
        _execute(move.source, statements)


def _execute(connection: Any, statements: list[str | tuple[str, list]]) -> None:
    with connection.cursor() as cursor:
        for statement in statements:
            sql, params = statement if isinstance(statement, tuple) else (statement, None)
            cursor.execute(sql, params)


def release(connection: Any, tables: list[str]) -> None:
    """Drop the freeze from `connection`'s database: its tables take writes again."""
    qn = connection.ops.quote_name
    if connection.vendor == "postgresql":
        statements = [f"DROP TRIGGER IF EXISTS cleave_moved ON {qn(t)}" for t in tables]
        statements.append("DROP FUNCTION IF EXISTS cleave_refuse_moved()")
    else:
        statements = [f"DROP TRIGGER IF EXISTS {_trigger(t, op)}" for t in tables for op in _OPS]
    statements.append(f"DROP TABLE IF EXISTS {MARKER}")
    if connection.vendor == "mysql":
        _execute(connection, statements)
        return
    with transaction.atomic(using=connection.alias):
        _execute(connection, statements)


# --- 4, 5. copy and verify -------------------------------------------------------------


def _columns(model: type[Model]) -> list[Any]:
    key = model._meta.pk
    return [key, *(f for f in model._meta.concrete_fields if f is not key)]


def _rows(connection: Any, model: type[Model]) -> Iterator[tuple]:
    """`model`'s rows in `connection`'s database as Python values (key first), in no order."""
    attnames = [f.attname for f in _columns(model)]
    with _AsAlias(connection.alias, connection):
        query = model._base_manager.using(connection.alias).order_by()
        yield from query.values_list(*attnames).iterator(chunk_size=2000)


def copy(move: Move) -> int:
    """Copy every table of the alias into the target, in one transaction; rows copied."""
    target = move.target
    qn = target.ops.quote_name
    total = 0
    with (
        _AsAlias(target.alias, target),
        transaction.atomic(using=target.alias),
        target.cursor() as cursor,
    ):
        if target.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
        for table in move.tables:
            cursor.execute(f"DELETE FROM {qn(table.name)}")  # noqa: S608 - a re-run's rows
        for table in move.tables:
            try:
                total += _copy_table(move, table, cursor)
            except DatabaseError as exc:
                raise Refused(f"copying {table.name} failed: {_first_line(exc)}") from exc
        if target.vendor == "mysql":
            cursor.execute("SET FOREIGN_KEY_CHECKS = 1")
        for statement in target.ops.sequence_reset_sql(no_style(), [t.model for t in move.tables]):
            cursor.execute(statement)
    return total


def _copy_table(move: Move, table: Table, cursor: Any) -> int:
    """One table's rows from the source into the target, in batches; how many."""
    target = move.target
    qn = target.ops.quote_name
    fields = _columns(table.model)
    sql = "INSERT INTO {} ({}) VALUES ({})".format(  # noqa: S608
        qn(table.name),
        ", ".join(qn(f.column) for f in fields),
        ", ".join(["%s"] * len(fields)),
    )
    total = 0
    batch: list[list[Any]] = []
    for row in _rows(move.source, table.model):
        batch.append(
            [f.get_db_prep_save(v, connection=target) for f, v in zip(fields, row, strict=True)]
        )
        if len(batch) >= _BATCH:
            cursor.executemany(sql, batch)
            total += len(batch)
            batch = []
    if batch:
        cursor.executemany(sql, batch)
        total += len(batch)
    return total


def _canonical(value: Any) -> str:
    if value is None:
        return "\x00"
    if isinstance(value, datetime):
        if timezone.is_aware(value):
            value = value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, default=str)
    if isinstance(value, Decimal):
        return str(value.normalize())
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, bytes | memoryview):
        return bytes(value).hex()
    if isinstance(value, UUID):
        return value.hex
    return str(value)


def _row_hash(row: tuple) -> int:
    return int.from_bytes(hashlib.sha256("\x1f".join(map(_canonical, row)).encode()).digest())


def digest(connection: Any, model: type[Model]) -> tuple[int, str]:
    """
    `model`'s row count in `connection`'s database and a checksum of its rows:
    the sum of each row's SHA-256 modulo 2**256, which does not depend on the
    order the database returns them in (MariaDB sorts its UUIDs unlike the others).
    """
    total = count = 0
    for row in _rows(connection, model):
        total = (total + _row_hash(row)) % 2**256
        count += 1
    return count, f"{total:064x}"


def _first_difference(move: Move, model: type[Model]) -> str:
    """Where the first row that differs differs: its key and columns (not values: secrets)."""
    names = [f.column for f in _columns(model)]
    targets = {_canonical(row[0]): row for row in _rows(move.target, model)}
    for source in _rows(move.source, model):
        target = targets.get(_canonical(source[0]))
        if target is None:
            return f"; the row {source[0]!s:.40} is missing"
        columns = [
            name
            for name, a, b in zip(names, source, target, strict=True)
            if _canonical(a) != _canonical(b)
        ]
        if columns:
            return f"; first in the row {source[0]!s:.40}, columns {', '.join(columns)}"
    return ""


def verify(move: Move) -> None:
    """Each table's count and checksum equal on both sides; `Refused` naming one that differs."""
    for table in move.tables:
        source = digest(move.source, table.model)
        target = digest(move.target, table.model)
        if source != target:
            raise Refused(
                f"{table.name} differs after the copy: {source[0]} rows in the source, "
                f"{target[0]} in the target (checksums {source[1][:12]} and {target[1][:12]})"
                + _first_difference(move, table.model)
            )
        table.rows = source[0]


# --- 6. record ------------------------------------------------------------------------


def record(move: Move, pause: float) -> ContextLocation:
    """The new location, in `default`, for every process to follow."""
    with transaction.atomic(using=DJANGO_DEFAULT_ALIAS):
        current = (
            ContextLocation.objects.using(DJANGO_DEFAULT_ALIAS)
            .select_for_update()
            .filter(label=move.label)
            .first()
        )
        location, _ = ContextLocation.objects.using(DJANGO_DEFAULT_ALIAS).update_or_create(
            label=move.label,
            defaults={
                "sealed_url": locations.seal(move.url),
                "shown_url": locations.shown(move.url),
                "epoch": (current.epoch if current else 0) + 1,
                "moved_at": timezone.now(),
                "pause_seconds": pause,
            },
        )
        _journal(
            move,
            ContextMove.State.MOVED,
            finished_at=timezone.now(),
            pause_seconds=pause,
            rows=sum(t.rows for t in move.tables),
        )
    return location


def _journal(move: Move, state: str, **fields: Any) -> None:
    journal = move.journal
    if journal is None:
        journal = move.journal = move.resuming or ContextMove(
            label=move.label,
            source=locations.shown(url_of(move.source.settings_dict)),
            started_at=timezone.now(),
        )
        journal.target = locations.shown(move.url)
        journal.sealed_target = locations.seal(move.url)
        journal.detail = ""
    journal.state = state
    for name, value in fields.items():
        setattr(journal, name, value)
    journal.save(using=DJANGO_DEFAULT_ALIAS)


def url_of(config: dict[str, Any]) -> str:
    """The URL of the database `config` (an alias's settings) names, without a password."""
    vendor = config["ENGINE"].rsplit(".", 1)[-1]
    if vendor == "sqlite3":
        return f"sqlite:///{config['NAME']}"
    scheme = {"postgresql": "postgres", "mysql": "mysql"}.get(vendor, vendor)
    host = config.get("HOST") or "localhost"
    port = f":{config['PORT']}" if config.get("PORT") else ""
    user = config.get("USER") or ""
    return f"{scheme}://{user}@{host}{port}/{config.get('NAME')}"


# --- the whole move --------------------------------------------------------------------


def run(move: Move, progress: Callable[[str], None]) -> float:
    """Migrate, freeze, copy, verify and record; the pause in seconds."""
    _journal(move, ContextMove.State.COPYING)
    started = perf_counter()
    applied = migrate(move)
    move.timings["migrate"] = perf_counter() - started
    progress(f"migrated the target ({applied} migrations) in {move.timings['migrate']:.2f} s")

    interrupted = signal.getsignal(signal.SIGTERM)

    def stop(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, stop)
    frozen = perf_counter()
    try:
        freeze(move)
        _journal(move, ContextMove.State.FROZEN, frozen_at=timezone.now())
        move.timings["freeze"] = perf_counter() - frozen
        progress(
            f"froze {move.label}'s writes at its old location in {move.timings['freeze']:.2f} s"
        )
        copied = copy(move)
        move.timings["copy"] = perf_counter() - frozen - move.timings["freeze"]
        progress(f"copied {copied} rows in {move.timings['copy']:.2f} s")
        verify(move)
        move.timings["verify"] = (
            perf_counter() - frozen - move.timings["freeze"] - move.timings["copy"]
        )
        progress(
            f"verified {len(move.tables)} tables (counts and checksums equal) "
            f"in {move.timings['verify']:.2f} s"
        )
        pause = perf_counter() - frozen
        record(move, pause)
    except (Refused, DatabaseError) as exc:
        _unfreeze_after(move, exc)
        raise Refused(
            f"{_first_line(exc)}; {move.label} serves from its old database again"
        ) from exc
    except BaseException as exc:  # SIGTERM, Ctrl-C, a bug: unfreeze, then let it go on
        _unfreeze_after(move, exc)
        raise
    finally:
        signal.signal(signal.SIGTERM, interrupted)
    return pause


def _unfreeze_after(move: Move, exc: BaseException) -> None:
    try:
        release(move.source, [t.name for t in move.tables])
    finally:
        _journal(
            move, ContextMove.State.FAILED, finished_at=timezone.now(), detail=_first_line(exc)
        )


def release_unfinished(label: str) -> ContextMove:
    """Unfreeze the source of `label`'s interrupted move (`--release`); `Refused` when none."""
    alias = _alias_of(label)
    journal = _unfinished(label)
    if journal is None:
        raise Refused(f"no move of {label} is unfinished")
    release(connections[alias], [model._meta.db_table for model in alias_models(alias)])
    journal.state = ContextMove.State.FAILED
    journal.finished_at = timezone.now()
    journal.detail = "released by an operator"
    journal.save(using=DJANGO_DEFAULT_ALIAS)
    return journal
