import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Count

from cleave.contexts import all_contexts
from cleave.events.models import OutboxEvent
from cleave.events.transports import get_transport


class Command(BaseCommand):
    help = "Operate the event bus: list, stats, relay."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        lister = sub.add_parser("list", help="list outbox events")
        lister.add_argument("--context", help="only this context's outbox")
        lister.add_argument("--type", help="event type (exact)")
        lister.add_argument("--status", choices=[s for s, _ in OutboxEvent.Status.choices])
        lister.add_argument("--limit", type=int, default=50)
        sub.add_parser("stats", help="pending and published events per context")
        relay = sub.add_parser("relay", help="deliver committed events that are still pending")
        relay.add_argument("--once", action="store_true", help="one sweep, then exit")
        relay.add_argument("--interval", type=float, default=2.0, help="seconds between sweeps")

    def _contexts(self, label=None):
        found = [cfg for cfg in all_contexts() if label in (None, cfg.label)]
        if label and not found:
            raise CommandError(f"No local context {label!r}.")
        return found

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    def do_list(self, context=None, type=None, status=None, limit=50, **_):
        for cfg in self._contexts(context):
            rows = OutboxEvent.objects.using(cfg.database).order_by("-occurred_at")
            if type:
                rows = rows.filter(type=type)
            if status:
                rows = rows.filter(status=status)
            for row in rows[:limit]:
                self.stdout.write(
                    f"{row.occurred_at:%Y-%m-%d %H:%M:%S} {cfg.label:<13} {row.type:<22} "
                    f"{row.status:<9} {row.id}"
                )

    def do_stats(self, **_):
        self.stdout.write(f"{'context':<14}{'pending':>9}{'published':>11}")
        for cfg in self._contexts():
            counts = dict(
                OutboxEvent.objects.using(cfg.database)
                .values_list("status")
                .annotate(n=Count("id"))
                .values_list("status", "n")
            )
            self.stdout.write(
                f"{cfg.label:<14}{counts.get('pending', 0):>9}{counts.get('published', 0):>11}"
            )

    def do_relay(self, once=False, interval=2.0, **_):
        transport = get_transport()
        while True:
            total = sum(transport.deliver_pending(cfg.database) for cfg in self._contexts())
            if total:
                self.stdout.write(f"relayed {total} pending event(s)")
            if once:
                return
            time.sleep(interval)
