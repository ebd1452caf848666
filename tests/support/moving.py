"""
Where a live system's moved contexts are, for tests and benchmarks of
`manage.py move_context`: fresh target databases (`Targets`), and a live
system whose aliases are read where they now live (`Shop`).
"""

from __future__ import annotations

import contextlib
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from cleave.testing import require_server
from tests.support.live import LiveSystem

POSTGRES = "postgres://postgres@127.0.0.1:5432"
MARIADB = "mysql://root@127.0.0.1:3306"


class Targets:
    """Fresh, empty databases to move to, dropped at the end."""

    def __init__(self) -> None:
        require_server("PostgreSQL", "127.0.0.1", 5432)
        require_server("MariaDB", "127.0.0.1", 3306)
        self.prefix = f"cleave_move_{uuid.uuid4().hex[:8]}"
        self.created: list[tuple[str, str]] = []

    def postgres(self, alias: str) -> str:
        import psycopg

        name = f"{self.prefix}_{alias}"
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        self.created.append(("postgres", name))
        return f"{POSTGRES}/{name}"

    def mariadb(self, alias: str) -> str:
        name = f"{self.prefix}_{alias}"
        with contextlib.closing(_mariadb(None)) as conn:
            conn.cursor().execute(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        self.created.append(("mariadb", name))
        return f"{MARIADB}/{name}"

    def drop(self) -> None:
        import psycopg

        for vendor, name in reversed(self.created):
            if vendor == "postgres":
                with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as conn:
                    conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            else:
                with contextlib.closing(_mariadb(None)) as conn:
                    conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")


def _mariadb(name: str | None):
    import pymysql

    return pymysql.connect(host="127.0.0.1", port=3306, user="root", database=name, autocommit=True)


@dataclass
class Shop:
    """A live system whose aliases are read where they live: SQLite files, or where they moved."""

    live: LiveSystem
    url: str
    groups: dict
    where: dict[str, str] = field(default_factory=dict)

    def sql(self, alias: str, query: str) -> list[tuple]:
        url = self.where.get(alias)
        if url is None:
            return self.live.sql(alias, query)
        name = url.rsplit("/", 1)[1]
        if url.startswith("mysql"):
            with contextlib.closing(_mariadb(name)) as conn, conn.cursor() as cursor:
                cursor.execute(query)
                return list(cursor.fetchall())
        import psycopg

        with psycopg.connect(f"{POSTGRES}/{name}") as conn:
            return conn.execute(query).fetchall()


@dataclass
class Urls:
    urls: list[str]


def fill_outbox(path: Path, source: str, rows: int) -> None:
    """
    `rows` published events in the outbox of the SQLite file at `path` (rows a
    move copies), each id a version 4 UUID (MariaDB's UUID type takes no other).
    """
    with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?), "
            "h(i, x) AS (SELECT i, lower(hex(randomblob(16))) FROM n) "
            "INSERT INTO cleave_outboxevent (id, type, version, source, data, correlation_id,"
            " causation_id, traceparent, occurred_at, status, attempts, last_error,"
            " broker_epoch) SELECT substr(x, 1, 12) || '4' || substr(x, 14, 3)"
            " || substr('89ab', 1 + abs(random()) % 4, 1) || substr(x, 18), 'bench.filled', 1, ?,"
            " '{\"n\": ' || i || '}', '', '', '', '2026-12-01 00:00:00', 'published', 1, '', ''"
            " FROM h",
            (rows, source),
        )
        conn.commit()
