"""
Bounded contexts: their app config, registry, database settings and router.

A context is a Django app whose AppConfig subclasses `ContextConfig`. It owns one
database alias (named after its label unless `database` says otherwise) and one
URL prefix under `/api/`. The router keeps every context's tables in its own
alias and `cleave`'s own tables (outbox, inbox, sagas) in every context alias, so
they commit atomically with the business data they belong to.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from django.apps import AppConfig, apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PLATFORM_APP_LABEL = "cleave"
DJANGO_DEFAULT_ALIAS = "default"


class ContextConfig(AppConfig):
    """
    Base AppConfig for a bounded context.

    Subclasses set `label` and may set `database` (defaults to the label) and
    `url_prefix` (defaults to the label). On ready, the context's
    `handlers`, `sagas` and `jobs` modules are imported so its subscribers,
    saga definitions and periodic jobs register; `cleave.apps` registers the
    event types its contract declares.
    """

    database: str = ""
    url_prefix: str = ""
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
        # (cleave.apps) registers the event types its contract declares and
        # checks that none would be lost
        for submodule in ("handlers", "sagas", "jobs"):
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


def release() -> str:
    """
    This installation's release: the installed distribution's version (traces
    name it; cached reads key on it, so a release never serves an answer an
    older one cached).
    """
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cleave")
    except PackageNotFoundError:  # run from a tree that was not installed
        return "0+unknown"
