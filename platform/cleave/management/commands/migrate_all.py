"""
`manage.py migrate_all`: migrate `default` and every local context alias.

One line per database says what was applied (or that it was up to date);
`-v 2` shows Django's own output for each. A context's tables exist only in its
alias and the platform's in every context alias, so most apps have nothing to
apply in most databases: Django would still list each of their migrations.
"""

from io import StringIO

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections

from cleave.management import migrations


class Command(BaseCommand):
    help = "Apply migrations to every database alias: default and each local context."

    def add_arguments(self, parser):
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args, verbosity: int = 1, **options):
        for alias in connections.settings:
            pending = migrations.plan(alias)
            applying = migrations.creating(alias, pending)
            out = self.stdout if verbosity >= 2 else StringIO()
            call_command(
                "migrate", database=alias, interactive=False, verbosity=verbosity, stdout=out
            )
            vendor = connections[alias].vendor
            if applying:
                apps = ", ".join(sorted({migration.app_label for migration in applying}))
                self.stdout.write(
                    f"{alias} ({vendor}): applied {len(applying)} migration(s) of {apps}"
                )
            elif pending:
                self.stdout.write(
                    f"{alias} ({vendor}): up to date (recorded {len(pending)} others)"
                )
            else:
                self.stdout.write(f"{alias} ({vendor}): up to date")
        self.stdout.write(self.style.SUCCESS(f"Migrated {len(connections.settings)} databases."))
