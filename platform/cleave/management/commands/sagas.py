from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from cleave.contexts import all_contexts
from cleave.sagas import engine
from cleave.sagas.models import SagaInstance


def _find(saga_id: str) -> tuple[str, SagaInstance]:
    try:
        key = UUID(saga_id)
    except ValueError:
        raise CommandError(f"{saga_id!r} is not a saga id (UUID).") from None
    for cfg in all_contexts():
        found = SagaInstance.objects.using(cfg.database).filter(pk=key).first()
        if found is not None:
            return cfg.database, found
    raise CommandError(f"No saga {saga_id} in any local context.")


class Command(BaseCommand):
    help = "Operate sagas: list, show, resume."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        lister = sub.add_parser("list")
        lister.add_argument("--state", choices=[s for s, _ in SagaInstance.State.choices])
        lister.add_argument("--type")
        lister.add_argument("--limit", type=int, default=50)
        show = sub.add_parser("show")
        show.add_argument("saga_id")
        resume = sub.add_parser("resume", help="continue sagas whose process died")
        resume.add_argument("saga_id", nargs="?")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_list(self, state=None, type=None, limit=50, **_):
        for cfg in all_contexts():
            rows = SagaInstance.objects.using(cfg.database).all()
            if state:
                rows = rows.filter(state=state)
            if type:
                rows = rows.filter(saga_type=type)
            for saga in rows[:limit]:
                self.stdout.write(
                    f"{saga.created_at:%Y-%m-%d %H:%M:%S} {saga.saga_type:<12} {saga.state:<13} "
                    f"step={saga.current_step} {saga.failure_reason or '-':<18} {saga.id}"
                )

    def do_show(self, saga_id, **_):
        alias, saga = _find(saga_id)
        self.stdout.write(f"{saga.saga_type} {saga.id} [{alias}]")
        self.stdout.write(
            f"  state: {saga.state}  step: {saga.current_step}  "
            f"reason: {saga.failure_reason or '-'}"
        )
        self.stdout.write(f"  correlation: {saga.correlation_id}")
        for log in saga.steps.using(alias).order_by("id"):
            self.stdout.write(
                f"  {log.started_at:%H:%M:%S.%f} {log.step:<18} {log.kind:<12} "
                f"#{log.attempt} {log.status:<9} {log.duration_ms or 0:.1f} ms "
                f"{(log.error.splitlines() or [''])[-1][:80]}"
            )

    def do_resume(self, saga_id=None, **_):
        if saga_id:
            alias, saga = _find(saga_id)
            result = engine.run(alias, saga.id)
            self.stdout.write(f"{result.id}: {result.state}")
            return
        count = 0
        for cfg in all_contexts():
            for result in engine.resume_all(cfg.database):
                count += 1
                self.stdout.write(f"{result.id}: {result.state}")
        self.stdout.write(f"resumed {count} saga(s)")
