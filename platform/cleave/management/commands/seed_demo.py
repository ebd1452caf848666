from importlib import import_module

from django.core.management.base import BaseCommand, CommandError

from cleave.core.registry import all_contexts


class Command(BaseCommand):
    help = "Create demo data in every local context (idempotent): each context's demo.seed()."

    def add_arguments(self, parser):
        parser.add_argument(
            "--contexts",
            help="only these local contexts, comma-separated (a split seeds catalog before "
            "inventory, which reads the catalog's products through its API)",
        )

    def handle(self, *args, contexts=None, **options):
        local = all_contexts()
        chosen = None
        if contexts:
            chosen = [label.strip() for label in contexts.split(",") if label.strip()]
            unknown = sorted(set(chosen) - {cfg.label for cfg in local})
            if unknown:
                raise CommandError(f"not served by this process: {unknown}")
        for cfg in local:
            if chosen is not None and cfg.label not in chosen:
                continue
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
