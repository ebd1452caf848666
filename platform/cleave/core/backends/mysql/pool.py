"""
The connection pool of a MySQL or MariaDB alias (PyMySQL connections), with
the policy of the psycopg pool that serves the PostgreSQL aliases and sized by
the same `<LABEL>_DB_POOL_*` settings (cleave.core.databases):

- a process opens at most `max_size` connections to the alias, whatever its
  number of threads; a thread that finds them all in use waits its turn (the
  first to wait is served first) up to `timeout` seconds, then gets
  `PoolTimeout`, an `OperationalError`: a technical failure that the API
  answers 503 with `Retry-After` and that sagas and handlers retry;
- Django gives a connection back when it closes it, at the end of each
  request (or sooner: `cleave.core.db.release()`); one given back inside a
  transaction is rolled back, one that is broken is closed;
- a connection is checked (a ping) before it is handed out again, and one the
  server dropped is replaced by a new one;
- connections are opened when needed; up to `min_size` of them stay open
  while idle, and any beyond those that stays idle `max_idle` seconds is
  closed, by one background thread per process (`Reaper`, started once a
  pool holds more than its minimum);
- a connection that a thread never gave back (the thread ended holding it)
  frees its place when it is garbage-collected; a forked child never touches
  its parent's connections.

Written by hand, because no library at hand pools PyMySQL connections this
way (each was tried against MariaDB 10.11 with Django 5.2):

- django-db-connection-pool 1.2.6 (SQLAlchemy's `QueuePool` behind Django's
  backend) keeps one pool per alias for the life of the process, built with
  the parameters of its first connection: once the test runner points the
  alias at the test database, it still connects to the database it had. A
  pool that is exhausted raises `sqlalchemy.exc.TimeoutError`, which Django
  does not translate, so the request answers 500, not 503.
- SQLAlchemy's `QueuePool` keeps `pool_size` connections for good and closes
  every one above them the moment it comes back: nothing closes a surplus
  connection after an idle time, so a steady load above the minimum opens and
  closes a connection per request.
- DBUtils' `PooledDB` waits for a free connection without a time limit;
  pymysql-pool counts its connections without a lock (so it can open more
  than its maximum) and turns every PyMySQL warning into an error in the
  whole process.

psycopg_pool has exactly this policy, but it pools psycopg connections only.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

# PyMySQL's top-level name: the class Django's MySQL backend (whose `Database`
# is PyMySQL, installed as MySQLdb) translates into its own OperationalError
from pymysql import OperationalError
from pymysql.constants import SERVER_STATUS

from cleave.core import threads

logger = logging.getLogger(__name__)

# What a connection carries while a thread holds it, and which pool it belongs to.
_CHECKOUT = "_cleave_pool_checkout"
_POOL = "_cleave_pool"


class PoolTimeout(OperationalError):
    """No connection of the pool came free in time (Django raises it as its OperationalError)."""


class PoolClosed(OperationalError):
    """The pool was closed while a thread waited for one of its connections."""


class _Waiter:
    """A thread waiting for a connection: handed one, or the right to open one."""

    __slots__ = ("conn", "event", "may_open")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.conn: Any = None
        self.may_open = False

    @property
    def served(self) -> bool:
        return self.conn is not None or self.may_open


class Pool:
    """
    At most `max_size` connections made by `connect()`, shared by the threads
    of this process (see the module's docstring).
    """

    def __init__(
        self,
        connect: Callable[[], Any],
        *,
        name: str,
        min_size: int,
        max_size: int,
        timeout: float,
        max_idle: float,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(f"pool {name!r}: need 0 <= min_size <= max_size and max_size >= 1")
        if timeout <= 0 or max_idle <= 0:
            raise ValueError(f"pool {name!r}: timeout and max_idle must be positive")
        self.connect = connect
        self.name = name
        self.min_size = min_size
        self.max_size = max_size
        self.timeout = timeout
        self.max_idle = max_idle
        self.pid = os.getpid()
        # reentrant: a connection that is garbage-collected (`_lost`) may free
        # its place from whatever thread the collector runs in, this one included
        self._lock = threading.RLock()
        self._idle: deque[tuple[Any, float]] = deque()  # (connection, idle since), oldest first
        self._waiting: deque[_Waiter] = deque()
        self._size = 0  # connections open: idle, in use, or being opened
        self._closed = False

    # --- taking and giving back ---------------------------------------------------------------

    def getconn(self) -> Any:
        """A connection for this thread: an idle one, checked, or a new one; else wait."""
        conn = self._take(time.monotonic() + self.timeout)
        if conn is not None and not _alive(conn):
            logger.info("Replacing a broken connection of the pool %r", self.name)
            _close_quietly(conn)
            conn = None
        if conn is None:
            conn = self._open()  # in the place taken, or that the broken one leaves
        checkout = weakref.finalize(conn, self._lost)
        checkout.atexit = False
        setattr(conn, _CHECKOUT, checkout)
        return conn

    def putconn(self, conn: Any) -> None:
        """Take back a connection `getconn()` gave; rolled back if in a transaction."""
        checkout = getattr(conn, _CHECKOUT, None)
        if checkout is None or getattr(conn, _POOL, None) is not self:
            raise ValueError(f"this connection was not taken from the pool {self.name!r}")
        setattr(conn, _CHECKOUT, None)
        if checkout.detach() is None or os.getpid() != self.pid:
            # already freed; or, in a forked child, the parent's connection,
            # which the child must neither close nor reuse
            return
        if not _reset(conn):
            self._discard(conn)
            return
        with self._lock:
            if self._closed:
                give_to, conn_to_close = None, conn
            elif self._waiting:
                give_to, conn_to_close = self._waiting.popleft(), None
                give_to.conn = conn
            else:
                give_to, conn_to_close = None, None
                self._idle.append((conn, time.monotonic()))
            surplus = self._size > self.min_size
        if give_to is not None:
            give_to.event.set()
        if conn_to_close is not None:
            self._discard(conn_to_close)
        elif surplus:
            threads.per_process(Reaper)

    def _take(self, deadline: float) -> Any:
        """An idle connection (the one given back last), or None: open one. Waits its turn."""
        with self._lock:
            if self._closed:
                raise PoolClosed(f"the connection pool {self.name!r} is closed")
            if self._idle:
                return self._idle.pop()[0]
            if self._size < self.max_size:
                self._size += 1
                return None
            waiter = _Waiter()
            self._waiting.append(waiter)
        waiter.event.wait(max(0.0, deadline - time.monotonic()))
        with self._lock:
            if waiter.served:
                # handed a connection, or the place of one that was closed (None:
                # open one), perhaps just as the wait ran out: take it all the same
                return waiter.conn
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            if self._closed:
                raise PoolClosed(f"the connection pool {self.name!r} is closed")
        raise PoolTimeout(
            f"no connection of the pool {self.name!r} came free within "
            f"{self.timeout:g} s ({self.max_size} in use)"
        )

    def _open(self) -> Any:
        """A new connection in a place already counted; the place is freed if it fails."""
        try:
            conn = self.connect()
        except BaseException:
            self._free_place()
            raise
        setattr(conn, _POOL, self)
        return conn

    def _discard(self, conn: Any) -> None:
        """Close a connection of this pool and free its place."""
        _close_quietly(conn)
        self._free_place()

    def _lost(self) -> None:
        """A connection was garbage-collected while a thread held it."""
        logger.warning("A connection of the pool %r was never given back", self.name)
        if os.getpid() == self.pid:
            self._free_place()

    def _free_place(self) -> None:
        with self._lock:
            if self._waiting and not self._closed:
                waiter = self._waiting.popleft()
                waiter.may_open = True  # the place passes to the first waiting thread
            else:
                waiter = None
                self._size -= 1
        if waiter is not None:
            waiter.event.set()

    # --- keeping it small -----------------------------------------------------------------------

    def shrink(self, now: float | None = None) -> int:
        """Close the idle connections beyond `min_size` idle for `max_idle` seconds; how many."""
        now = time.monotonic() if now is None else now
        stale = []
        with self._lock:
            if os.getpid() != self.pid:
                return 0
            while (
                self._idle
                and self._size > self.min_size
                and now - self._idle[0][1] >= self.max_idle
            ):
                stale.append(self._idle.popleft()[0])
                self._size -= 1
        for conn in stale:
            _close_quietly(conn)
        return len(stale)

    def close(self) -> None:
        """Close the idle connections now and the others as they come back; refuse new takers."""
        with self._lock:
            self._closed = True
            idle = [conn for conn, _since in self._idle]
            self._idle.clear()
            self._size -= len(idle)
            waiting = list(self._waiting)
            self._waiting.clear()
        for waiter in waiting:
            waiter.event.set()
        if os.getpid() == self.pid:
            for conn in idle:
                _close_quietly(conn)

    def stats(self) -> dict[str, int]:
        """Connections open (`size`), idle among them, and threads waiting for one."""
        with self._lock:
            return {"size": self._size, "idle": len(self._idle), "waiting": len(self._waiting)}


def _alive(conn: Any) -> bool:
    try:
        conn.ping()  # PyMySQL: raises rather than reconnects
    except Exception:
        return False
    return True


def _reset(conn: Any) -> bool:
    """Whether `conn` can serve another thread, rolled back if it was in a transaction."""
    if not conn.open:
        return False
    try:
        if conn.server_status & SERVER_STATUS.SERVER_STATUS_IN_TRANS or not conn.get_autocommit():
            conn.rollback()
    except Exception:
        return False
    return conn.open


def _close_quietly(conn: Any) -> None:
    try:
        conn.close()
    except Exception:  # already closed, or the server is gone: the socket is closed either way
        logger.debug("Closing a pooled connection failed", exc_info=True)


# --- this process's pools -------------------------------------------------------------------

_pools: dict[Hashable, Pool] = {}
_pools_pid = os.getpid()
_pools_lock = threading.Lock()


def _mine() -> dict[Hashable, Pool]:
    """This process's pools; a forked child starts with none (its parent's are not its own)."""
    global _pools_pid
    if _pools_pid != os.getpid():
        _pools.clear()
        _pools_pid = os.getpid()
    return _pools


def pool_for(key: Hashable, make: Callable[[], Pool]) -> Pool:
    """This process's pool for `key` (an alias and its connection parameters), made when missing."""
    with _pools_lock:
        pools = _mine()
        pool = pools.get(key)
        if pool is None:
            pool = pools[key] = make()
        return pool


def close(name: str) -> None:
    """Close this process's pools named `name` (an alias); the next connection makes a new one."""
    with _pools_lock:
        pools = _mine()
        closing = [key for key, pool in pools.items() if pool.name == name]
        found = [pools.pop(key) for key in closing]
    for pool in found:
        pool.close()


def owner(conn: Any) -> Pool | None:
    """The pool `conn` belongs to; None for a connection opened without one."""
    return getattr(conn, _POOL, None)


def live() -> list[Pool]:
    with _pools_lock:
        return list(_mine().values())


class Reaper(threads.Service):
    """Close what stayed idle too long beyond each pool's minimum, in every pool of the process."""

    name = "cleave-db-pools"

    def run(self) -> None:
        while not self.wait(_tick()):
            for pool in live():
                try:
                    pool.shrink()
                except Exception:
                    logger.exception("Shrinking the connection pool %r failed", pool.name)


def _tick() -> float:
    """Seconds between two looks: a connection is closed at most half its idle time late."""
    return max(0.05, min([1.0, *(pool.max_idle / 2 for pool in live())]))
