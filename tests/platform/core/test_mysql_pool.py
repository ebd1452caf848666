"""
The connection pool of the MySQL/MariaDB aliases (cleave.core.backends.mysql.pool).

First with fake connections, for the pool's own rules; then against a real
MariaDB server (127.0.0.1:3306 unless `CLEAVE_TEST_MARIADB_URL` says
otherwise, in a database made for the test and dropped after it), through
Django: connections reused across requests, never more than the maximum open
under concurrency, an exhausted pool answering 503 with `Retry-After`, a
connection the server dropped replaced, idle ones beyond the minimum closed.
A test that needs the server is skipped when it is away, and fails instead
under `CLEAVE_REQUIRE_SERVICES=1` (CI).
"""

from __future__ import annotations

import gc
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pymysql
import pytest
from django.core.signals import request_finished, request_started
from django.db import OperationalError, connections, transaction
from django.test import Client
from django.urls import path
from pymysql.constants import SERVER_STATUS
from rest_framework.response import Response
from rest_framework.views import APIView

from cleave.core.backends.mysql.pool import Pool, PoolTimeout
from cleave.core.databases import database_settings
from cleave.core.db import release
from cleave.core.errors import is_technical
from cleave.testing import require_server

# --- the pool's rules, with fake connections -----------------------------------------------


class FakeConnection:
    """What the pool uses of a PyMySQL connection."""

    opened = 0

    def __init__(self) -> None:
        FakeConnection.opened += 1
        self.number = FakeConnection.opened
        self.open = True
        self.server_status = SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT
        self.rolled_back = 0
        self.broken = False

    def ping(self) -> None:
        if self.broken:
            raise pymysql.err.OperationalError(2013, "Lost connection to server during query")

    def get_autocommit(self) -> bool:
        return bool(self.server_status & SERVER_STATUS.SERVER_STATUS_AUTOCOMMIT)

    def rollback(self) -> None:
        self.rolled_back += 1
        self.server_status &= ~SERVER_STATUS.SERVER_STATUS_IN_TRANS

    def close(self) -> None:
        self.open = False


def fake_pool(**sizes: float) -> Pool:
    options = {"min_size": 1, "max_size": 2, "timeout": 5.0, "max_idle": 10.0, **sizes}
    return Pool(FakeConnection, name="fake", **options)


def test_a_connection_given_back_is_handed_out_again():
    pool = fake_pool()
    first = pool.getconn()
    pool.putconn(first)

    assert pool.getconn() is first
    assert pool.stats() == {"size": 1, "idle": 0, "waiting": 0}


def test_an_exhausted_pool_makes_a_thread_wait_then_refuses_with_an_operational_error():
    pool = fake_pool(max_size=1, timeout=0.2)
    held = pool.getconn()
    started = time.monotonic()

    with pytest.raises(
        PoolTimeout, match=r"no connection of the pool 'fake' came free within 0.2 s"
    ):
        pool.getconn()

    assert 0.2 <= time.monotonic() - started < 2
    # the class Django's MySQL backend translates into its own OperationalError
    # (its `Database` is PyMySQL, installed as MySQLdb)
    assert issubclass(PoolTimeout, pymysql.OperationalError)
    assert pool.stats() == {"size": 1, "idle": 0, "waiting": 0}
    pool.putconn(held)


def test_waiting_threads_are_served_in_the_order_they_came():
    pool = fake_pool(max_size=1)
    held = pool.getconn()
    served: list[str] = []

    def wait_for_one(name: str) -> None:
        conn = pool.getconn()
        served.append(name)
        pool.putconn(conn)

    threads = []
    for name in ("first", "second", "third"):
        threads.append(threading.Thread(target=wait_for_one, args=(name,)))
        threads[-1].start()
        while pool.stats()["waiting"] < len(threads):
            time.sleep(0.01)
    pool.putconn(held)
    for thread in threads:
        thread.join(timeout=5)

    assert served == ["first", "second", "third"]
    assert pool.stats() == {"size": 1, "idle": 1, "waiting": 0}


def test_a_broken_idle_connection_is_replaced_before_it_is_handed_out():
    pool = fake_pool()
    conn = pool.getconn()
    pool.putconn(conn)
    conn.broken = True  # the server went away meanwhile

    fresh = pool.getconn()

    assert fresh is not conn
    assert conn.open is False
    assert pool.stats()["size"] == 1


def test_a_connection_given_back_in_a_transaction_is_rolled_back_and_a_closed_one_dropped():
    pool = fake_pool()
    busy, gone = pool.getconn(), pool.getconn()
    busy.server_status |= SERVER_STATUS.SERVER_STATUS_IN_TRANS
    gone.open = False

    pool.putconn(busy)
    pool.putconn(gone)

    assert busy.rolled_back == 1
    assert pool.stats() == {"size": 1, "idle": 1, "waiting": 0}
    assert pool.getconn() is busy


def test_a_connection_never_given_back_frees_its_place_once_collected():
    pool = fake_pool(max_size=1, timeout=0.2)
    pool.getconn()  # and forgotten, as by a thread that ended holding it
    gc.collect()

    assert pool.stats()["size"] == 0
    pool.putconn(pool.getconn())  # no wait


def test_only_idle_connections_beyond_the_minimum_are_closed_and_only_after_max_idle():
    pool = fake_pool(min_size=1, max_size=3, max_idle=10.0)
    conns = [pool.getconn() for _ in range(3)]
    for conn in conns:
        pool.putconn(conn)
    now = time.monotonic()

    assert pool.shrink(now + 5) == 0  # not idle long enough
    assert pool.shrink(now + 11) == 2
    assert pool.stats() == {"size": 1, "idle": 1, "waiting": 0}
    assert [conn.open for conn in conns] == [False, False, True]  # the last given back stays


def test_a_connection_in_use_is_not_counted_as_idle():
    pool = fake_pool(min_size=0, max_size=2, max_idle=10.0)
    held, idle = pool.getconn(), pool.getconn()
    pool.putconn(idle)

    assert pool.shrink(time.monotonic() + 60) == 1
    assert (held.open, idle.open) == (True, False)


def test_a_pool_refuses_sizes_that_make_no_sense():
    with pytest.raises(ValueError, match="min_size <= max_size"):
        fake_pool(min_size=3, max_size=2)
    with pytest.raises(ValueError, match="max_size >= 1"):
        fake_pool(min_size=0, max_size=0)


# --- against MariaDB, through Django -------------------------------------------------------

MARIADB = os.environ.get("CLEAVE_TEST_MARIADB_URL", "mysql://root@127.0.0.1:3306").rstrip("/")
PROBE = "mariaprobe"  # an alias of this module's own, on a database made for the test


def _server(database: str | None = None) -> pymysql.Connection:
    parts = urlsplit(MARIADB)
    return pymysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        database=database,
        autocommit=True,
    )


@pytest.fixture
def probe(tmp_path, monkeypatch, django_db_blocker) -> Iterator[Callable[..., str]]:
    """Add the alias `mariaprobe` on MariaDB to `connections`, its pool sized as asked."""
    parts = urlsplit(MARIADB)
    require_server("MariaDB", parts.hostname, parts.port or 3306)
    name = f"cleave_pool_{uuid.uuid4().hex[:8]}"
    admin = _server()
    admin.cursor().execute(f"CREATE DATABASE {name}")

    def add(**sizes: float) -> str:
        monkeypatch.setenv("MARIAPROBE_DATABASE_URL", f"{MARIADB}/{name}")
        for key, value in sizes.items():
            monkeypatch.setenv(f"MARIAPROBE_DB_POOL_{key.upper()}", str(value))
        config = database_settings([PROBE], data_dir=tmp_path)[PROBE]
        # Django's defaults filled in as for any alias (it insists on a `default` beside it)
        known = {"default": connections.settings["default"], PROBE: config}
        connections.settings[PROBE] = connections.configure_settings(known)[PROBE]
        return name

    with django_db_blocker.unblock():
        try:
            yield add
        finally:
            if PROBE in connections.settings:
                connections[PROBE].close()
                connections[PROBE].close_pool()
                del connections[PROBE]
                del connections.settings[PROBE]
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
            admin.close()


def connection_id() -> int:
    with connections[PROBE].cursor() as cursor:
        cursor.execute("SELECT CONNECTION_ID()")
        return cursor.fetchone()[0]


def open_on_server(database: str) -> int:
    """How many connections the server has open to `database`."""
    with _server() as admin, admin.cursor() as cursor:
        cursor.execute(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s", [database]
        )
        return cursor.fetchone()[0]


def the_pool() -> Pool:
    pool = connections[PROBE].connection_pool()
    assert pool is not None
    return pool


def in_another_thread(work: Callable[[], object]) -> object:
    """What `work` returns in a thread of its own, or the OperationalError it raised."""
    result: list[object] = []

    def run() -> None:
        try:
            result.append(work())
        except OperationalError as exc:
            result.append(exc)
        finally:
            connections[PROBE].close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join(timeout=30)
    return result[0]


@pytest.mark.services
def test_a_connection_goes_back_to_the_pool_at_the_end_of_each_request(probe):
    probe()
    seen = []
    for _ in range(3):
        request_started.send(sender=None)
        seen.append(connection_id())
        request_finished.send(sender=None)  # Django closes the alias's connection here

        assert connections[PROBE].connection is None  # given back, not kept by the thread

    assert len(set(seen)) == 1  # one server session served the three requests
    assert the_pool().stats() == {"size": 1, "idle": 1, "waiting": 0}
    # set once for the session, and kept by it for every request it serves
    with connections[PROBE].cursor() as cursor:
        cursor.execute("SELECT @@SESSION.tx_isolation")
        assert cursor.fetchone()[0] == "READ-COMMITTED"


@pytest.mark.services
def test_another_thread_is_served_by_the_same_server_session(probe):
    probe(max=1, timeout=0.5)
    mine = connection_id()
    # held by this thread, the pool's only connection is out of reach
    refused = in_another_thread(connection_id)
    assert isinstance(refused, OperationalError)
    assert is_technical(refused)

    release(PROBE)  # as after an in-process service call

    assert connections[PROBE].connection is None
    assert in_another_thread(connection_id) == mine
    assert connection_id() == mine


@pytest.mark.services
def test_a_release_inside_an_atomic_block_keeps_the_transaction(probe):
    probe(max=1)
    with transaction.atomic(using=PROBE):
        with connections[PROBE].cursor() as cursor:
            cursor.execute("CREATE TEMPORARY TABLE probe_rows (n int)")
            cursor.execute("INSERT INTO probe_rows VALUES (1)")
        held = connections[PROBE].connection

        release(PROBE)

        assert connections[PROBE].connection is held
    release(PROBE)
    assert connections[PROBE].connection is None


@pytest.mark.services
def test_at_most_the_maximum_is_opened_whatever_the_number_of_threads(probe):
    database = probe(max=3, min=1, timeout=20)
    threads = 12
    go = threading.Barrier(threads)
    peak = [0]
    watching = threading.Event()

    def watch() -> None:
        while not watching.wait(0.02):
            peak[0] = max(peak[0], open_on_server(database))

    def checkout() -> int:
        go.wait()
        try:
            with connections[PROBE].cursor() as cursor:
                cursor.execute("SELECT CONNECTION_ID(), SLEEP(0.2)")
                return cursor.fetchone()[0]
        finally:
            connections[PROBE].close()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with ThreadPoolExecutor(max_workers=threads) as executor:
            served = list(executor.map(lambda _: checkout(), range(threads)))
    finally:
        watching.set()
        watcher.join()

    assert len(served) == threads  # every thread waited its turn and was served
    assert len(set(served)) == 3
    assert 1 <= peak[0] <= 3
    assert the_pool().stats()["size"] == 3


@pytest.mark.services
def test_a_connection_the_server_dropped_is_replaced_before_it_is_used(probe):
    probe()
    dropped = connection_id()
    connections[PROBE].close()
    with _server() as admin, admin.cursor() as cursor:
        cursor.execute(f"KILL {dropped}")

    assert connection_id() not in (dropped, None)
    assert the_pool().stats()["size"] == 1


@pytest.mark.services
def test_a_connection_given_back_inside_a_transaction_is_rolled_back(probe):
    database = probe(max=1)
    with connections[PROBE].cursor() as cursor:
        cursor.execute("CREATE TABLE probe_rows (n int) ENGINE=InnoDB")
    pool = the_pool()
    connections[PROBE].close()

    conn = pool.getconn()
    conn.begin()
    conn.cursor().execute("INSERT INTO probe_rows VALUES (1)")
    pool.putconn(conn)

    with _server(database) as admin, admin.cursor() as cursor:
        cursor.execute("SELECT COUNT(*) FROM probe_rows")
        assert cursor.fetchone()[0] == 0
    assert pool.getconn() is conn  # and it serves again


@pytest.mark.services
def test_idle_connections_beyond_the_minimum_are_closed_after_the_idle_time(probe):
    database = probe(max=4, min=1, idle=0.3, timeout=5)
    go = threading.Barrier(4)

    def checkout() -> None:
        go.wait()
        try:
            with connections[PROBE].cursor() as cursor:
                cursor.execute("SELECT SLEEP(0.1)")
        finally:
            connections[PROBE].close()

    with ThreadPoolExecutor(max_workers=4) as executor:
        list(executor.map(lambda _: checkout(), range(4)))
    assert open_on_server(database) == 4

    deadline = time.monotonic() + 5
    while open_on_server(database) > 1 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert open_on_server(database) == 1  # the minimum stays
    assert the_pool().stats() == {"size": 1, "idle": 1, "waiting": 0}


class ProbeView(APIView):
    authentication_classes: list = []
    permission_classes: list = []
    throttle_classes: list = []

    def get(self, request):
        return Response({"connection": connection_id()})


urlpatterns = [path("probe", ProbeView.as_view())]


@pytest.mark.services
def test_an_exhausted_pool_answers_503_with_retry_after_without_hanging(probe, settings):
    settings.ROOT_URLCONF = __name__
    probe(max=1, timeout=0.5)
    assert Client().get("/probe").status_code == 200
    held = connection_id()  # the pool's only connection, held by this thread
    started = time.monotonic()

    answer = in_another_thread(lambda: Client().get("/probe"))

    assert answer.status_code == 503
    assert answer["Retry-After"] == "2"
    assert answer["Content-Type"] == "application/problem+json"
    assert answer.json()["detail"].startswith("A database this request needs is unavailable")
    assert time.monotonic() - started < 5  # the pool's 0.5 s, not the client's patience
    connections[PROBE].close()
    assert in_another_thread(lambda: Client().get("/probe").json()) == {"connection": held}
