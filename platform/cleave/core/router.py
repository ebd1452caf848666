"""
The database router: each context's models in its own alias, the platform's
tables in every context alias, Django's own in `default`; and the system check
that no relation crosses contexts.
"""

from __future__ import annotations

from typing import Any

from django.core import checks

from cleave.core.registry import (
    DJANGO_DEFAULT_ALIAS,
    PLATFORM_APP_LABEL,
    all_contexts,
    context_aliases,
    context_for_app_label,
)

# The platform's models that live in `default` only (cleave.core.moves.DEFAULT_ONLY;
# named here, not imported: the router is loaded before any model).
DEFAULT_ONLY = frozenset({"contextlocation", "contextmove"})

# --- router ---------------------------------------------------------------------


class ContextRouter:
    """
    Send each context's models to its own alias.

    `cleave`'s own models live in every context alias; callers always say which
    with `.using(alias)`, and instances are saved back where they were read.
    The record of context moves (`cleave.core.moves`) lives in `default`.
    Django's own apps (auth, admin, sessions, contenttypes) live in `default`.
    """

    def _context_alias(self, model: type) -> str | None:
        if model._meta.model_name in DEFAULT_ONLY and model._meta.app_label == PLATFORM_APP_LABEL:
            return DJANGO_DEFAULT_ALIAS
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
            if model_name in DEFAULT_ONLY:
                return db == DJANGO_DEFAULT_ALIAS
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
