from django.core.management.base import BaseCommand

from cleave.management import arguments

from ... import commands


class Command(BaseCommand):
    help = "Release held reservations whose time ran out (reason `expired`)."

    def add_arguments(self, parser):
        parser.add_argument(
            "--limit", type=arguments.count, default=500, help="at most this many per run"
        )

    def handle(self, *args, **options):
        released = commands.reservations_release_expired(limit=options["limit"])
        self.stdout.write(f"Released {released} expired reservation(s).")
