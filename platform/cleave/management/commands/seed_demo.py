from importlib import import_module

from django.core.management.base import BaseCommand

from cleave.contexts import all_contexts


class Command(BaseCommand):
    help = "Create demo data in every local context (idempotent): each context's demo.seed()."

    def handle(self, *args, **options):
        for cfg in all_contexts():
            try:
                module = import_module(f"{cfg.name}.demo")
            except ModuleNotFoundError as exc:
                if exc.name == f"{cfg.name}.demo":
                    continue
                raise
            summary = module.seed()
            self.stdout.write(f"{cfg.label}: {summary}")
        self.stdout.write(
            self.style.SUCCESS("Demo data ready.")
            + "\nCreate an operator for /admin/ with:  python manage.py createsuperuser"
        )
