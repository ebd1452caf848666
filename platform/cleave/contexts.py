"""
Bounded contexts: their app config, registry, database settings and router.

A context is a Django app whose AppConfig subclasses `ContextConfig`. It owns one
database alias (named after its label unless `database` says otherwise) and one
URL prefix under `/api/`. The router keeps every context's tables in its own
alias and `cleave`'s own tables (outbox, inbox, sagas) in every context alias, so
they commit atomically with the business data they belong to.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from importlib import import_module
from pathlib import Path
from typing import Any

import dj_database_url
from django.apps import AppConfig, apps
from django.conf import settings
from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from cleave import conf

from .env import env_float, env_int

PLATFORM_APP_LABEL = "cleave"
DJANGO_DEFAULT_ALIAS = "default"


class ContextConfig(AppConfig):
    """
    Base AppConfig for a bounded context.

    Subclasses set `label` and may set `database` (defaults to the label) and
    `url_prefix` (defaults to the label). On ready, the context's `events`,
    `handlers`, `sagas` and `jobs` modules are imported so its subscribers,
    saga definitions and periodic jobs register; `cleave.apps` registers the
    event types of `events`.
    """

    database: str = ""
    url_prefix: str = ""
    # The event types (globs allowed) this context's handlers receive, declared
    # here because apps.py can be imported where the context is not installed:
    # a process serving other contexts learns who subscribes to what it publishes
    # (tests/architecture checks it against the handlers' @subscriber).
    subscribes: tuple[str, ...] = ()
    default_auto_field = "django.db.models.BigAutoField"
    # Django picks the AppConfig subclass of an apps.py automatically only when
    # it is the single one with `default` true; this base class is imported
    # into every context's apps.py, so it opts out and its subclasses opt in.
    default = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default" not in cls.__dict__:
            cls.default = True

    def __init__(self, app_name: str, app_module: Any) -> None:
        super().__init__(app_name, app_module)
        if not self.database:
            self.database = self.label
        if not self.url_prefix:
            self.url_prefix = self.label

    def ready(self) -> None:
        # importing these registers the context's subscribers, saga
        # definitions and periodic jobs; the platform's own AppConfig
        # (cleave.apps) registers the event types declared in `events` and
        # checks that none would be lost
        for submodule in ("events", "handlers", "sagas", "jobs"):
            self.import_submodule(submodule)

    def import_submodule(self, submodule: str) -> Any:
        """The context's module `submodule`, or None when the context has none."""
        name = f"{self.name}.{submodule}"
        try:
            return import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                return None
            raise

    @property
    def api_urlconf(self) -> str:
        return f"{self.name}.api.urls"


def local_context_names(all_names: list[str], selected: str | None) -> list[str]:
    """Return the contexts this process serves: all of them, or those in `selected`."""
    if not selected:
        return list(all_names)
    chosen = [name.strip() for name in selected.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(all_names))
    if unknown:
        raise ImproperlyConfigured(
            f"CLEAVE_CONTEXTS names unknown contexts {unknown}; known: {all_names}"
        )
    return [name for name in all_names if name in chosen]


def context_config_class(label: str) -> type[ContextConfig] | None:
    """A context's AppConfig class, from its apps.py, whether or not it is installed here."""
    package = settings.CLEAVE_CONTEXT_PACKAGE
    try:
        module = import_module(f"{package}.{label}.apps")
    except ModuleNotFoundError:
        return None
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ContextConfig)
            and value is not ContextConfig
            and value.label == label
        ):
            return value
    return None


def remote_subscribers(type_names: list[str]) -> dict[str, list[str]]:
    """Which contexts this process does not serve subscribe to which of `type_names`."""
    local = set(settings.CLEAVE_CONTEXTS)
    found: dict[str, list[str]] = {}
    for label in settings.CLEAVE_ALL_CONTEXTS:
        if label in local:
            continue
        config = context_config_class(label)
        patterns = config.subscribes if config is not None else ()
        matched = [
            name for name in type_names if any(fnmatch.fnmatchcase(name, p) for p in patterns)
        ]
        if matched:
            found[label] = matched
    return found


def refuse_lost_events(label: str, type_names: list[str]) -> None:
    """
    Refuse to start a process whose events would be lost: with the in-process
    transport, an event reaches only the subscribers in this process, so one
    that a context served elsewhere subscribes to would be marked delivered
    and never reach it.
    """
    if settings.CLEAVE_EVENT_TRANSPORT != "inprocess":
        return
    remote = remote_subscribers(type_names)
    if remote:
        who = "; ".join(
            f"{other} subscribes to {', '.join(names)}" for other, names in remote.items()
        )
        raise ImproperlyConfigured(
            f"Context {label!r} publishes events that contexts this process does not serve "
            f"subscribe to ({who}), but CLEAVE_EVENT_TRANSPORT is 'inprocess': they would "
            "never arrive. Set CLEAVE_EVENT_TRANSPORT=celery and CELERY_BROKER_URL in every "
            "process of a split deployment."
        )


# Connection pools of the PostgreSQL aliases, per process and alias. Three
# keep three gunicorn workers with all seven aliases on one server at 63
# connections at most, leaving room under PostgreSQL's default
# max_connections of 100 (97 for other than superusers) for a manage.py, a
# relay and two Celery workers of one connection per alias each; see
# docs/configuration.md, "Databases". A thread waits for a free connection no
# longer than one attempt of a service call may last (3 s inside the 5 s
# budget), so a pool that is too small shows as a technical failure of that
# call, which is retried, and not as a step that outlived its timeout.
POOL_MIN_DEFAULT = 1
POOL_MAX_DEFAULT = 3
POOL_TIMEOUT_DEFAULT = 3.0


def database_settings(labels: list[str], *, data_dir: Path) -> dict[str, dict[str, Any]]:
    """
    Build DATABASES: `default` plus one alias per context label.

    `DATABASE_URL` configures `default` and `<LABEL>_DATABASE_URL` each context
    alias; unset, each is an SQLite file in `data_dir`. A PostgreSQL alias takes
    its connections from a pool of its own in each process (`_pool_options()`),
    so that processes x pool size x aliases bounds what the server sees. The
    other backends, and a PostgreSQL alias whose pool is off, keep one
    connection per thread across requests for `CLEAVE_DB_CONN_MAX_AGE` seconds
    (default 60; 0 closes them after every request), checked before reuse.
    """
    max_age = conf.value("CLEAVE_DB_CONN_MAX_AGE")

    def one(alias: str, env_name: str) -> dict[str, Any]:
        url = os.environ.get(env_name)
        if not url:
            url = f"sqlite:///{data_dir / f'{alias}.sqlite3'}"
        config = dj_database_url.parse(url, conn_max_age=max_age, conn_health_checks=max_age > 0)
        engine = config["ENGINE"]
        options = config.setdefault("OPTIONS", {})
        # read for every alias, so that a bad value stops the process even
        # before the alias moves to PostgreSQL
        pool = _pool_options(alias)
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
        elif engine == "django.db.backends.postgresql" and pool is not None:
            options["pool"] = pool
            # Django refuses persistent connections beside a pool: a connection
            # goes back to the pool when Django closes it, at the end of each
            # request (or earlier, `cleave.db.release()`). The pool checks a
            # connection before handing it out, so one the server dropped is
            # replaced instead of failing the request.
            config["CONN_MAX_AGE"] = 0
            config["CONN_HEALTH_CHECKS"] = True
        return config

    databases = {DJANGO_DEFAULT_ALIAS: one(DJANGO_DEFAULT_ALIAS, "DATABASE_URL")}
    for label in labels:
        databases[label] = one(label, f"{label.upper()}_DATABASE_URL")
    return databases


def _pool_options(alias: str) -> dict[str, Any] | None:
    """
    The psycopg pool of a PostgreSQL alias, from `<LABEL>_DB_POOL_MIN`, `_MAX`
    and `_TIMEOUT` (`DB_POOL_*` for `default`); None when `_MAX` is 0.

    The pool holds at most `max_size` connections in each process, whatever
    its number of threads; a thread that finds them all in use waits up to
    `timeout` seconds, then gets `OperationalError` (a technical failure,
    retried by sagas, 503 at the API) rather than one connection too many.
    """
    prefix = "DB_POOL" if alias == DJANGO_DEFAULT_ALIAS else f"{alias.upper()}_DB_POOL"
    max_size = env_int(f"{prefix}_MAX", default=POOL_MAX_DEFAULT)
    min_size = env_int(f"{prefix}_MIN", default=min(POOL_MIN_DEFAULT, max_size))
    timeout = env_float(f"{prefix}_TIMEOUT", default=POOL_TIMEOUT_DEFAULT, minimum=0.001)
    if max_size == 0:
        return None
    if min_size > max_size:
        raise ImproperlyConfigured(
            f"{prefix}_MIN must be at most {prefix}_MAX ({max_size}), not {min_size}"
        )
    return {"name": alias, "min_size": min_size, "max_size": max_size, "timeout": timeout}


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


# --- registry ------------------------------------------------------------------


def all_contexts() -> list[ContextConfig]:
    """Every context installed in this process, in INSTALLED_APPS order."""
    return [cfg for cfg in apps.get_app_configs() if isinstance(cfg, ContextConfig)]


def get_context(label: str) -> ContextConfig:
    """Return the local context with this label, or raise LookupError."""
    for cfg in all_contexts():
        if cfg.label == label:
            return cfg
    raise LookupError(f"No local context labelled {label!r}")


def is_local(label: str) -> bool:
    return any(cfg.label == label for cfg in all_contexts())


def context_for_app_label(app_label: str) -> ContextConfig | None:
    try:
        cfg = apps.get_app_config(app_label)
    except LookupError:
        return None
    return cfg if isinstance(cfg, ContextConfig) else None


def context_for_module(module_name: str) -> ContextConfig | None:
    cfg = apps.get_containing_app_config(module_name)
    return cfg if isinstance(cfg, ContextConfig) else None


def context_aliases() -> list[str]:
    return [cfg.database for cfg in all_contexts()]


def alias_for(label: str) -> str:
    return get_context(label).database


# --- router ---------------------------------------------------------------------


class ContextRouter:
    """
    Send each context's models to its own alias.

    `cleave`'s own models live in every context alias; callers always say which
    with `.using(alias)`, and instances are saved back where they were read.
    Django's own apps (auth, admin, sessions, contenttypes) live in `default`.
    """

    def _context_alias(self, model: type) -> str | None:
        cfg = context_for_app_label(model._meta.app_label)
        return cfg.database if cfg else None

    def db_for_read(self, model: type, **hints: Any) -> str | None:
        alias = self._context_alias(model)
        if alias:
            return alias
        instance = hints.get("instance")
        if instance is not None and instance._state.db:
            return instance._state.db
        return None

    db_for_write = db_for_read

    def allow_relation(self, obj1: Any, obj2: Any, **hints: Any) -> bool | None:
        label1, label2 = obj1._meta.app_label, obj2._meta.app_label
        cfg1, cfg2 = context_for_app_label(label1), context_for_app_label(label2)
        if cfg1 or cfg2:
            return label1 == label2
        return None

    def allow_migrate(self, db: str, app_label: str, model_name: str | None = None, **hints: Any):
        if app_label == PLATFORM_APP_LABEL:
            return db in context_aliases()
        cfg = context_for_app_label(app_label)
        if cfg is not None:
            return db == cfg.database
        return db == DJANGO_DEFAULT_ALIAS


# --- system check ---------------------------------------------------------------


@checks.register(checks.Tags.models)
def check_no_cross_context_relations(app_configs=None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Refuse a relation from a context's model to a model outside that context."""
    errors: list[checks.CheckMessage] = []
    for cfg in all_contexts():
        if app_configs is not None and cfg not in app_configs:
            continue
        for model in cfg.get_models(include_auto_created=True):
            for field in model._meta.get_fields(include_hidden=True):
                related = getattr(field, "related_model", None)
                if related is None or (
                    not getattr(field, "concrete", False) and not field.many_to_many
                ):
                    continue
                if isinstance(related, str):
                    # an unresolved lazy reference names its app explicitly
                    target_label = related.split(".")[0]
                else:
                    target_label = related._meta.app_label
                if target_label != cfg.label:
                    errors.append(
                        checks.Error(
                            f"{model._meta.label}.{field.name} relates to {target_label}; "
                            f"context {cfg.label!r} may refer to other contexts' aggregates "
                            "by id only.",
                            hint="Store the other aggregate's id in a UUIDField instead.",
                            obj=field,
                            id="cleave.E001",
                        )
                    )
    return errors
