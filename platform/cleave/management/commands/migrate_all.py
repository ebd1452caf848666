from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connections


class Command(BaseCommand):
    help = "Apply migrations to every database alias: default and each local context."

    def add_arguments(self, parser):
        parser.add_argument("--noinput", "--no-input", action="store_false", dest="interactive")

    def handle(self, *args, **options):
        for alias in connections.settings:
            self.stdout.write(self.style.MIGRATE_HEADING(f"Migrating {alias}"))
            call_command(
                "migrate",
                database=alias,
                interactive=False,
                verbosity=options["verbosity"],
                stdout=self.stdout,
            )
        self.stdout.write(self.style.SUCCESS(f"Migrated {len(connections.settings)} aliases."))
