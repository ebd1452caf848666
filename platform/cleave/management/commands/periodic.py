import contextlib

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from cleave.runtime import periodic


class Command(BaseCommand):
    help = "Run the periodic jobs (saga recovery, relay sweeps, expiries) in the foreground."

    def add_arguments(self, parser):
        parser.add_argument("--list", action="store_true", help="list the jobs and exit")
        parser.add_argument("--once", metavar="JOB", help="run one job now and exit")

    def handle(self, *args, list=False, once=None, **options):
        if list:
            for job in periodic.jobs():
                self.stdout.write(f"{job.name:<40} every {job.every:g}s  {job.context or '-'}")
            return
        if once:
            try:
                job = periodic.get(once)
            except LookupError as exc:
                raise CommandError(str(exc)) from None
            try:
                result = job.func()
            except DatabaseError as exc:
                raise CommandError(
                    f"{job.name} failed: {exc} (are the databases migrated? manage.py migrate_all)"
                ) from None
            self.stdout.write(f"{job.name}: {result}")
            return
        self.stdout.write(f"running {len(periodic.jobs())} periodic job(s); Ctrl-C stops")
        with contextlib.suppress(KeyboardInterrupt):
            periodic.run_forever()
