"""
Where a context's database is once it has moved (`manage.py move_context`),
and how every running process follows it without a restart.

A move records the alias's new location in the shared `default` alias (the
`cleave_context_location` table, `cleave.core.moves.ContextLocation`: the URL
sealed with a key derived from `SECRET_KEY`, so that no password is stored in
clear) and leaves the old database refusing every write: triggers on each of
its tables raise `MOVED`. A process follows the recorded location:

- before its first connection to a context alias (`install()` makes the
  connection settings look the location up once): a process started later
  with the old environment opens its connections at the new location, never
  at the old one;
- at the start of a request, at most once every `POLL` seconds (`watch()`,
  called by the web bootstrap), so that reads move too;
- at once when a write meets the old database's refusal: the error becomes
  `ContextMoved`, an `OperationalError` and so a technical failure (503 with
  `Retry-After` at the API, retried by sagas, handlers and the relay), and
  the process reads the location again.

Following replaces the alias's settings in this process; a thread's
connection to the old location is closed and dropped at its next use outside
a transaction (`check()`, called by Cleave's backends before they connect
or run a statement) or at its next request, and its next connection opens
at the new location.

Written by hand: Django reads `DATABASES` once and has no notion of a
database that moves while it runs; the libraries that move data (pgcopydb,
Vitess) move it, but the processes following the move is ours to do.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import threading
from time import monotonic
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from django.conf import settings
from django.db import OperationalError, connections
from django.db.utils import DatabaseErrorWrapper

from cleave.core.registry import DJANGO_DEFAULT_ALIAS, context_aliases

logger = logging.getLogger("cleave.moves")

# The message of the old database's triggers: a write there is refused with it.
MOVED = "cleave: context moved"
# The table of recorded locations, in `default` (cleave.core.moves.ContextLocation).
TABLE = "cleave_context_location"
# How often a serving process reads the recorded locations at most, in seconds;
# after a write met the old database, at most every FORCED_POLL.
POLL = 1.0
FORCED_POLL = 0.2


class ContextMoved(OperationalError):
    """
    A write met a database that its context has left, or a connection to it
    was dropped: technical, like an outage; made again, it reaches the new
    location.
    """


# --- sealing the URL ----------------------------------------------------------------


def _keys() -> Any:
    from cryptography.fernet import Fernet, MultiFernet
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    def key(secret: str) -> Fernet:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"cleave context location"
        ).derive(secret.encode())
        return Fernet(base64.urlsafe_b64encode(derived))

    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return MultiFernet([key(secret) for secret in secrets])


def seal(url: str) -> str:
    """`url` encrypted and authenticated (Fernet) with a key derived from SECRET_KEY."""
    return _keys().encrypt(url.encode()).decode()


def unseal(token: str) -> str:
    """The URL `seal()` sealed; `InvalidToken` when another secret sealed it."""
    return _keys().decrypt(token.encode()).decode()


def shown(url: str) -> str:
    """`url` as it may be printed, logged or stored in clear: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


# --- following ----------------------------------------------------------------------

_lock = threading.Lock()
_enabled = True
_loaded = False
_next_poll = 0.0
# per alias: the epoch of the location this process follows, and its settings
_applied: dict[str, int] = {}
_current: dict[str, dict[str, Any]] = {}


class _Following(dict):
    """The connection settings: the first lookup of a context alias reads the locations."""

    def __getitem__(self, alias: str) -> dict[str, Any]:
        first = not _loaded and _enabled and alias != DJANGO_DEFAULT_ALIAS
        if first and alias in context_aliases():
            follow(force=True)
        return super().__getitem__(alias)


def install() -> None:
    """Make this process read the recorded locations before it connects to a context alias."""
    if not isinstance(connections.settings, _Following):
        connections.__dict__["settings"] = _Following(connections.settings)


def disable() -> None:
    """Follow nothing (the test suite: its databases are its own, whatever `default` says)."""
    global _enabled
    _enabled = False


def enable() -> None:
    global _enabled, _loaded, _next_poll
    _enabled, _loaded, _next_poll = True, False, 0.0


def watch() -> None:
    """Read the locations at the start of requests (a web process; at most every POLL s)."""
    from django.core.signals import request_started

    request_started.connect(_on_request, dispatch_uid="cleave.core.locations")


def _on_request(**kwargs: Any) -> None:
    follow()
    if _current:
        drop_stale()


def recorded() -> dict[str, tuple[int, str]] | None:
    """
    The recorded locations, by label: (epoch, sealed URL); None when `default`
    cannot say (not migrated yet, unreachable).

    Read through a connection of its own, outside whatever transaction the
    calling thread holds on `default`.
    """
    wrapper = connections.create_connection(DJANGO_DEFAULT_ALIAS)
    try:
        with wrapper.cursor() as cursor:
            cursor.execute(f"SELECT label, epoch, sealed_url FROM {TABLE}")  # noqa: S608
            return {label: (int(epoch), sealed) for label, epoch, sealed in cursor.fetchall()}
    except Exception as exc:  # no table yet, no server, no database access (the test suite)
        logger.debug("Context locations unavailable: %s", exc)
        return None
    finally:
        with contextlib.suppress(Exception):  # it never connected
            wrapper.close()


def follow(*, force: bool = False) -> list[str]:
    """
    Read the recorded locations (at most every POLL seconds, FORCED_POLL when
    `force`) and follow each that moved since; the labels it followed.
    """
    global _loaded, _next_poll
    if not _enabled:
        return []
    now = monotonic()
    with _lock:
        due = _next_poll - (POLL - FORCED_POLL if force else 0.0)
        if _loaded and now < due:
            return []
        _loaded = True
        _next_poll = now + POLL
    locations = recorded()
    if not locations:
        return []
    followed = []
    with _lock:
        for label, (epoch, sealed) in locations.items():
            if dict.__contains__(connections.settings, label) and epoch > _applied.get(label, 0):
                _apply(label, unseal(sealed), epoch)
                followed.append(label)
    return followed


def _apply(alias: str, url: str, epoch: int) -> None:
    from django.db.utils import load_backend

    from cleave.core import db
    from cleave.core.databases import alias_settings, with_query_metrics

    new = complete(alias, with_query_metrics({alias: alias_settings(alias, url)})[alias])
    old = dict.__getitem__(connections.settings, alias)
    if old.get("OPTIONS", {}).get("pool"):
        # pools are kept per alias: the old location's would hand out its connections
        close_pool = getattr(
            load_backend(old["ENGINE"]).DatabaseWrapper(old, alias), "close_pool", None
        )
        if close_pool is not None:
            close_pool()
    dict.__setitem__(connections.settings, alias, new)
    settings.DATABASES[alias] = new
    _current[alias] = new
    _applied[alias] = epoch
    db.forget_plans()  # statements prepared for the old location's vendor
    logger.warning("Context %s follows its move to %s", alias, shown(url))


def complete(alias: str, config: dict[str, Any]) -> dict[str, Any]:
    """`config` with Django's defaults for every key it leaves out, as `DATABASES` gets them."""
    # Django completes a whole DATABASES, which must hold `default`
    placeholder = {"ENGINE": "django.db.backends.dummy"}
    return connections.configure_settings({DJANGO_DEFAULT_ALIAS: placeholder, alias: config})[alias]


def current(alias: str) -> dict[str, Any] | None:
    """The settings `alias` follows after a move in this process; None before any."""
    return _current.get(alias)


def stale(wrapper: Any) -> bool:
    """Whether `wrapper` was made for where its alias was before a move this process followed."""
    settings_now = _current.get(wrapper.alias)
    return settings_now is not None and wrapper.settings_dict is not settings_now


def close_if_stale(wrapper: Any) -> bool:
    """Close and drop `wrapper` when it is stale and holds no transaction; whether it did."""
    if stale(wrapper) and not wrapper.in_atomic_block:
        _drop(wrapper)
        return True
    return False


def check(wrapper: Any) -> None:
    """
    Before a connection of `wrapper` is used: when its alias has moved since
    it was made, close it, drop it from its thread and raise `ContextMoved`,
    so that the next one opens at the new location. Inside a transaction it
    is only refused (the transaction must end where it began).
    """
    if not stale(wrapper):
        return
    close_if_stale(wrapper)
    raise ContextMoved(
        f"{wrapper.alias}'s database has moved; the next connection opens at its new location"
    )


def drop_stale() -> None:
    """Close and drop this thread's connections to where a context was (outside transactions)."""
    for alias in _current:
        wrapper = getattr(connections._connections, alias, None)
        if wrapper is not None:
            close_if_stale(wrapper)


def _drop(wrapper: Any) -> None:
    try:
        wrapper.close()
    except Exception:  # a connection the old server already dropped
        logger.debug("Closing a connection to a moved database failed", exc_info=True)
    if getattr(connections._connections, wrapper.alias, None) is wrapper:
        delattr(connections._connections, wrapper.alias)


class ErrorWrapper(DatabaseErrorWrapper):
    """
    Django's conversion of driver errors, which makes the old database's
    refusal (its triggers' `MOVED`) a `ContextMoved` and follows the move.
    """

    def __exit__(self, exc_type, exc_value, traceback):
        if exc_type is not None and MOVED in str(exc_value):
            self.wrapper.errors_occurred = True
            follow(force=True)
            raise ContextMoved(
                f"{self.wrapper.alias}'s database has moved; try again shortly"
            ) from exc_value
        return super().__exit__(exc_type, exc_value, traceback)
