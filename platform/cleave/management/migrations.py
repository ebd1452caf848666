"""What is left to migrate in one database alias: for `migrate_all` and `wait_for_migrations`."""

from __future__ import annotations

from django.db import connections, router
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.migration import Migration


def plan(alias: str) -> list[Migration]:
    """The migrations not yet recorded as applied in `alias`, in the order they apply."""
    executor = MigrationExecutor(connections[alias])
    return [
        migration
        for migration, _backwards in executor.migration_plan(executor.loader.graph.leaf_nodes())
    ]


def creating(alias: str, migrations: list[Migration]) -> list[Migration]:
    """
    Those of `migrations` that create anything in `alias`: the router decides
    (a context's tables live in its alias only); the others are only recorded.
    """
    return [m for m in migrations if router.allow_migrate(alias, m.app_label)]
