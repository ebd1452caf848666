"""
`manage.py sagas`: list, show, resume, retry, compensate and prune saga instances.

Instances live in their owning context's alias; every local alias is searched.
"""

from __future__ import annotations

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from cleave import sagas
from cleave.core.registry import all_contexts
from cleave.management import arguments
from cleave.runtime import state as state_readings
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


def _outcome(saga: SagaInstance) -> str:
    reason = f" ({saga.failure_reason})" if saga.failure_reason else ""
    return f"{saga.id}: {saga.state}{reason}"


class Command(BaseCommand):
    help = "Operate sagas: list, show, resume, retry, compensate, prune."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        lister = sub.add_parser("list", help="saga instances, newest first")
        lister.add_argument("--state", choices=[s for s, _ in SagaInstance.State.choices])
        lister.add_argument("--type")
        lister.add_argument(
            "--waiting",
            action="store_true",
            help="only sagas waiting for a participant (or a database) to come back",
        )
        lister.add_argument(
            "--overdue",
            action="store_true",
            help="only unfinished sagas past their deadline (a compensation that keeps failing)",
        )
        lister.add_argument(
            "--since", type=arguments.since, help="30m, 2h, 7d, or an ISO date or date-time"
        )
        lister.add_argument("--limit", type=arguments.count, default=50)
        show = sub.add_parser("show", help="one saga and its step timeline")
        show.add_argument("saga_id")
        resume = sub.add_parser("resume", help="continue sagas whose process died")
        resume.add_argument("saga_id", nargs="?")
        retry = sub.add_parser("retry", help="run a failed saga's compensation again")
        retry.add_argument("saga_id")
        compensate = sub.add_parser(
            "compensate", help="undo a saga: cancel a running one, refund a completed one"
        )
        compensate.add_argument("saga_id")
        compensate.add_argument("--reason", help="the failure reason (default: the saga's own)")
        prune = sub.add_parser(
            "prune", help="delete sagas that completed or compensated more than N days ago"
        )
        prune.add_argument("--older-than", type=arguments.days, required=True, metavar="DAYS")
        prune.add_argument("--context", help="only this context's alias")
        prune.add_argument("--dry-run", action="store_true", help="count, delete nothing")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_list(
        self, state=None, type=None, since=None, limit=50, waiting=False, overdue=False, **_
    ):
        after = since
        for cfg in all_contexts():
            rows = SagaInstance.objects.using(cfg.database).all()
            if state:
                rows = rows.filter(state=state)
            if waiting:
                rows = rows.filter(state_readings.waiting())
            if overdue:
                rows = rows.filter(state_readings.overdue(timezone.now()))
            if type:
                rows = rows.filter(saga_type=type)
            if after:
                rows = rows.filter(created_at__gte=after)
            for saga in rows[:limit]:
                self.stdout.write(
                    f"{saga.created_at:%Y-%m-%d %H:%M:%S} {saga.saga_type:<12} {saga.state:<13} "
                    f"step={saga.current_step} {saga.failure_reason or '-':<18} {saga.id}"
                    + (
                        f" waiting until {saga.wake_at:%H:%M:%S}: {saga.last_error}"
                        if saga.wake_at
                        else ""
                    )
                )

    def do_show(self, saga_id, **_):
        alias, saga = _find(saga_id)
        self.stdout.write(f"{saga.saga_type} {saga.id} [{alias}]")
        self.stdout.write(
            f"  state: {saga.state}  step: {saga.current_step}  "
            f"reason: {saga.failure_reason or '-'}"
        )
        lease = (
            f"{saga.lease_owner} until {saga.lease_expires_at:%H:%M:%S}"
            if saga.lease_owner and saga.lease_expires_at
            else "-"
        )
        self.stdout.write(
            f"  correlation: {saga.correlation_id}  heartbeat: {saga.heartbeat_at or '-'}  "
            f"lease: {lease}  deadline: {saga.deadline or '-'}  "
            f"cancel requested: {saga.cancel_requested or '-'}"
        )
        if saga.wake_at or saga.last_error:
            self.stdout.write(
                f"  waiting until: {saga.wake_at or '-'}  last error: {saga.last_error or '-'}"
            )
        for log in saga.steps.using(alias).order_by("id"):
            self.stdout.write(
                f"  {log.started_at:%H:%M:%S.%f} {log.step:<18} {log.kind:<12} "
                f"#{log.attempt} {log.status:<9} {log.duration_ms or 0:.1f} ms "
                f"{log.idempotency_key} {(log.error.splitlines() or [''])[-1][:80]}"
            )

    def do_resume(self, saga_id=None, **_):
        if saga_id:
            alias, saga = _find(saga_id)
            self.stdout.write(_outcome(sagas.run(alias, saga.id)))
            return
        count = 0
        for cfg in all_contexts():
            for result in sagas.resume_all(cfg.database):
                count += 1
                self.stdout.write(_outcome(result))
        self.stdout.write(f"resumed {count} saga(s)")

    def do_retry(self, saga_id, **_):
        alias, saga = _find(saga_id)
        if saga.state not in (SagaInstance.State.FAILED, SagaInstance.State.COMPENSATING):
            raise CommandError(
                f"Saga {saga.id} is {saga.state}; only a failed (or stalled compensating) "
                "saga can be retried. Use `resume` for a running one."
            )
        self.stdout.write(_outcome(sagas.retry(alias, saga.id)))

    def do_compensate(self, saga_id, reason=None, **_):
        alias, saga = _find(saga_id)
        if saga.state == SagaInstance.State.COMPENSATED:
            raise CommandError(f"Saga {saga.id} is already compensated.")
        self.stdout.write(_outcome(sagas.compensate(alias, saga.id, reason)))

    def do_prune(self, older_than, context=None, dry_run=False, **_):
        verb = "would delete" if dry_run else "deleted"
        for cfg in arguments.contexts(context):
            report = sagas.prune(cfg.database, older_than=older_than, dry_run=dry_run)
            self.stdout.write(f"{cfg.label:<14}{verb} sagas {report.sagas}, steps {report.steps}")
