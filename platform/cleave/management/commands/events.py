"""
`python manage.py events <action>`: operate the event bus.

    list      outbox events (the event log), filtered
    dead      dead letters, filtered
    stats     pending / published / retrying / dead per context (and broker queues)
    relay     publish what is pending and send due retries: once, or every N seconds
    redrive   attempt one, several or all dead letters of a context again
    replay    deliver the event log again to one subscriber (--reset rebuilds it)
    prune     delete settled rows older than N days (never what is pending)
    topology  declare the broker's exchanges, queues and bindings (Celery transport)
"""

from __future__ import annotations

import fnmatch
import json
import signal
import threading
import uuid
from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from cleave.management import arguments
from cleave.messaging import delivery, relay, replay
from cleave.messaging.broker import publisher, topology
from cleave.messaging.models import DeadLetter, OutboxEvent
from cleave.messaging.transports import get_transport
from cleave.runtime import bootstrap, periodic, state


class Command(BaseCommand):
    help = "Operate the event bus: list, dead, stats, relay, redrive, replay, prune, topology."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)

        lister = sub.add_parser("list", help="list outbox events (newest first)")
        lister.add_argument("--context", help="only this context's outbox")
        lister.add_argument("--type", help="event type; globs allowed (order.*)")
        lister.add_argument("--status", choices=[s for s, _ in OutboxEvent.Status.choices])
        lister.add_argument(
            "--since",
            type=arguments.since,
            help="occurred at or after (30m, 2h, 7d or an ISO date)",
        )
        lister.add_argument("--correlation-id", help="one business flow")
        lister.add_argument("--limit", type=arguments.count, default=50)
        lister.add_argument("--json", action="store_true", help="one JSON envelope per line")

        dead = sub.add_parser("dead", help="list dead letters (newest first)")
        dead.add_argument("--context", help="only this subscribing context")
        dead.add_argument("--type", help="event type; globs allowed")
        dead.add_argument("--status", choices=[s for s, _ in DeadLetter.Status.choices])
        dead.add_argument("--since", type=arguments.since)
        dead.add_argument("--limit", type=arguments.count, default=50)
        dead.add_argument("--verbose", action="store_true", help="with error and traceback")

        stats = sub.add_parser("stats", help="pending, published, retrying and dead per context")
        stats.add_argument("--json", action="store_true")

        relay_cmd = sub.add_parser("relay", help="publish pending events, send due retries")
        relay_cmd.add_argument("--once", action="store_true", help="one sweep, then exit")
        relay_cmd.add_argument(
            "--interval", type=arguments.seconds, default=None, help="seconds between sweeps"
        )
        relay_cmd.add_argument(
            "--grace",
            type=arguments.at_least_zero,
            default=None,
            help="only rows older than this many seconds (default CLEAVE_EVENT_RELAY_GRACE; "
            "--once takes every pending row)",
        )

        redrive = sub.add_parser("redrive", help="attempt dead letters again")
        redrive.add_argument("--context", required=True, help="the subscribing context")
        which = redrive.add_mutually_exclusive_group(required=True)
        which.add_argument("--id", action="append", dest="ids", help="a dead letter's id")
        which.add_argument("--all", action="store_true", help="every dead letter of the context")
        redrive.add_argument("--type", help="with --all: only this event type (globs allowed)")

        replay_cmd = sub.add_parser("replay", help="deliver the event log again to a subscriber")
        replay_cmd.add_argument("--subscriber", required=True, help="the subscribing context")
        replay_cmd.add_argument("--type", help="only event types matching this glob")
        replay_cmd.add_argument(
            "--since", type=arguments.since, help="only events since (30m, 2h, 7d or an ISO date)"
        )
        replay_cmd.add_argument(
            "--reset", action="store_true", help="empty the read model first and rebuild it"
        )

        prune = sub.add_parser("prune", help="delete settled rows older than N days")
        prune.add_argument("--older-than", type=arguments.days, required=True, metavar="DAYS")
        prune.add_argument("--context", help="only this context's alias")
        prune.add_argument("--dry-run", action="store_true", help="count, delete nothing")

        sub.add_parser("topology", help="declare exchanges, queues and bindings on the broker")

    def handle(self, *args, action, **options):
        getattr(self, f"do_{action}")(**options)

    # --- reading ------------------------------------------------------------------

    def do_list(
        self,
        context=None,
        type=None,
        status=None,
        since=None,
        correlation_id=None,
        limit=50,
        json=False,
        **_,
    ):
        for cfg in arguments.contexts(context):
            rows = OutboxEvent.objects.using(cfg.database).order_by("-occurred_at", "-id")
            if type and not set("*?[") & set(type):
                rows = rows.filter(type=type)
            if status:
                rows = rows.filter(status=status)
            if since:
                rows = rows.filter(occurred_at__gte=since)
            if correlation_id:
                rows = rows.filter(correlation_id=correlation_id)
            shown = 0
            for row in rows.iterator():
                if type and not fnmatch.fnmatchcase(row.type, type):
                    continue
                if json:
                    self.stdout.write(_json({**row.envelope().to_dict(), "status": row.status}))
                else:
                    self.stdout.write(
                        f"{row.occurred_at:%Y-%m-%d %H:%M:%S} {cfg.label:<13} {row.type:<22} "
                        f"{row.status:<9} {row.id}"
                    )
                shown += 1
                if shown >= limit:
                    break

    def do_dead(self, context=None, type=None, status=None, since=None, limit=50, **options):
        verbose = options.get("verbose")
        for cfg in arguments.contexts(context):
            rows = DeadLetter.objects.using(cfg.database).order_by("-dead_at")
            if status:
                rows = rows.filter(status=status)
            if since:
                rows = rows.filter(dead_at__gte=since)
            rows = [
                r for r in rows[: limit * 4] if not type or fnmatch.fnmatchcase(r.event_type, type)
            ]
            for row in rows[:limit]:
                self.stdout.write(
                    f"{row.dead_at:%Y-%m-%d %H:%M:%S} {cfg.label:<13} {row.event_type:<22} "
                    f"{row.status:<9} {row.reason:<16} {row.attempts:>2} {row.id} {row.handler}"
                )
                if verbose:
                    self.stdout.write(f"    event {row.event_id}: {row.error}")
                    for line in row.traceback.splitlines():
                        self.stdout.write(f"    {line}")

    def do_stats(self, json=False, **_):
        contexts = arguments.contexts()
        table = {}
        for cfg in contexts:
            table[cfg.label] = state.event_counts(cfg.database)
        if get_transport().name == "celery":
            try:
                depths = publisher.queue_depths([cfg.label for cfg in contexts])
            except Exception as exc:
                self.stderr.write(f"broker: {type(exc).__name__}: {exc}")
                depths = {}
            for label, (queued, dead_queued) in depths.items():
                table[label]["queued"] = queued
                table[label]["broker_dead"] = dead_queued
        if json:
            self.stdout.write(_json(table))
            return
        columns = ["pending", "published", "retrying", "dead"]
        if any("queued" in row for row in table.values()):
            columns += ["queued", "broker_dead"]
        self.stdout.write(f"{'context':<14}" + "".join(f"{c:>12}" for c in columns))
        for label, row in table.items():
            cells = "".join(f"{_cell(row, c):>12}" for c in columns)
            self.stdout.write(f"{label:<14}{cells}")
        if any(row.get("estimated") for row in table.values()):
            self.stdout.write(
                f"~ estimated from the database's statistics (more than {state.EXACT_UP_TO:,} rows)"
            )

    # --- acting ---------------------------------------------------------------------

    def do_relay(self, once=False, interval=None, grace=None, **_):
        if once:
            counts = relay.sweep(grace=timedelta(seconds=grace or 0))
            self._report_sweep(counts)
            return
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        every = interval if interval is not None else periodic.get(periodic.RELAY_SWEEP).every
        self.stdout.write(
            f"relay: {get_transport().name} transport, sweeping every {every:g}s", ending="\n"
        )
        self.stdout.flush()
        if grace is not None:
            settings.CLEAVE_EVENT_RELAY_GRACE = grace
        bootstrap.relay(stop, every=every, on_sweep=self._report_sweep)

    def _report_sweep(self, counts):
        published = sum(c["published"] for c in counts.values())
        retried = sum(c["retried"] for c in counts.values())
        if published:
            self.stdout.write(f"relayed {published} pending event(s)")
        if retried:
            self.stdout.write(f"retried {retried} due deliver(y/ies)")
        self.stdout.flush()

    def do_redrive(self, context, ids=None, all=False, type=None, **_):
        (cfg,) = arguments.contexts(context)
        letters = DeadLetter.objects.using(cfg.database).filter(status=DeadLetter.Status.DEAD)
        if ids:
            try:
                letters = letters.filter(pk__in=[uuid.UUID(i) for i in ids])
            except ValueError as exc:
                raise CommandError(f"--id: {exc}") from None
        letters = [
            r
            for r in letters.order_by("dead_at")
            if not type or fnmatch.fnmatchcase(r.event_type, type)
        ]
        if ids and len(letters) < len(ids):
            self.stderr.write(
                f"{len(ids) - len(letters)} id(s) are not dead letters of {cfg.label} "
                "(unknown, or already redriven)"
            )
        deliveries = delivery.prepare_redrive(cfg.database, letters)
        get_transport().redrive(deliveries)
        self.stdout.write(f"redrove {len(deliveries)} dead letter(s) of {cfg.label}")

    def do_replay(self, subscriber, type=None, since=None, reset=False, **_):
        try:
            report = replay.replay(subscriber, type_pattern=type, since=since, reset=reset)
        except replay.ReplayError as exc:
            raise CommandError(str(exc)) from None
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())) or "nothing"
        self.stdout.write(
            f"replayed {report.events} event(s) to {report.subscriber}"
            f"{' after a reset' if reset else ''}: {outcomes}"
        )

    def do_prune(self, older_than, context=None, dry_run=False, **_):
        verb = "would delete" if dry_run else "deleted"
        for cfg in arguments.contexts(context):
            report = replay.prune(cfg.database, older_than=older_than, dry_run=dry_run)
            self.stdout.write(
                f"{cfg.label:<14}{verb} outbox {report.outbox}, inbox {report.inbox}, "
                f"deliveries {report.deliveries}, dead letters {report.dead_letters}"
            )

    def do_topology(self, **_):
        app = publisher.celery_app()
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=2, timeout=5)
            labels = topology.declare(conn)
        self.stdout.write(f"exchange {topology.exchange_name()} (topic, durable)")
        for label in labels:
            patterns = ", ".join(topology.context_patterns(label)) or "(no subscriptions)"
            self.stdout.write(
                f"queue {topology.queue_name(label)} ← {patterns}; "
                f"dead letters → {topology.dead_queue_name(label)}"
            )


def _cell(row: dict, column: str) -> str:
    if row.get(column) is None:
        return "-"
    return f"~{row[column]}" if column in row.get("estimated", ()) else str(row[column])


def _json(value) -> str:
    return json.dumps(value, default=str, sort_keys=True)
