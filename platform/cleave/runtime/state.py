"""
What operators read of the platform's tables in every context alias: the
outbox backlog, the sagas that need a look (and why), the dead letters not
redriven. `/metrics` (`probes.StateCollector`), `manage.py events stats`,
`manage.py sagas list`, `manage.py status` and the admin's "needs attention"
page read them here, so "waiting" or "overdue" means one thing everywhere.

A saga needs attention when it is, in this order (a saga counts once, under
the first that holds):

- **failed**: its compensation gave up; `sagas retry` once the cause is fixed;
- **compensation overdue**: compensating past its deadline: a participant keeps
  failing (each such attempt also counts in `cleave_saga_overdue_compensations`);
- **overdue**: running past its deadline: the driver compensates at the next
  step boundary, so one still running is not being driven;
- **stalled**: unfinished, due (not waiting for a later time), and held by no
  process for more than `CLEAVE_SAGA_LEASE_SECONDS`: the periodic resume (every
  10 s) should have taken it; `sagas resume`;
- **waiting**: on a participant that met a technical failure (`wake_at`); it
  calls again by itself, until its deadline.

An outbox lags when its oldest pending row is older than the relay's grace
and one sweep interval (`CLEAVE_EVENT_RELAY_GRACE` + `CLEAVE_EVENT_RELAY_INTERVAL`):
both the hand-over after commit and the sweep missed it. A dead letter needs
attention until it is redriven. A context alias that cannot be read is
reported as unavailable, never raised: one database down must not hide the
others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.db import Error as DatabaseFailure
from django.db import connections
from django.db.models import Count, Min, Model, Q
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from cleave.core.registry import all_contexts
from cleave.messaging.models import DeadLetter, Delivery, OutboxEvent
from cleave.sagas.models import SagaInstance

logger = logging.getLogger(__name__)

State = SagaInstance.State
UNFINISHED = (State.RUNNING, State.COMPENSATING)

# the kinds of trouble, most urgent first
UNAVAILABLE = "unavailable"
SAGA_FAILED = "saga_failed"
COMPENSATION_OVERDUE = "compensation_overdue"
SAGA_OVERDUE = "saga_overdue"
SAGA_STALLED = "saga_stalled"
DEAD_LETTER = "dead_letter"
OUTBOX_LAGGING = "outbox_lagging"
SAGA_WAITING = "saga_waiting"

KINDS: dict[str, str] = {
    UNAVAILABLE: "Contexts whose database cannot be read",
    SAGA_FAILED: "Failed sagas (compensation gave up)",
    COMPENSATION_OVERDUE: "Compensations past the saga's deadline",
    SAGA_OVERDUE: "Running sagas past their deadline",
    SAGA_STALLED: "Stalled sagas (no process drives them)",
    DEAD_LETTER: "Dead letters not redriven",
    OUTBOX_LAGGING: "Outbox backlog (events not published)",
    SAGA_WAITING: "Sagas waiting on a participant",
}
SAGA_KINDS = (SAGA_FAILED, COMPENSATION_OVERDUE, SAGA_OVERDUE, SAGA_STALLED, SAGA_WAITING)

# the model an operator needs to view to see each kind (`app_label.codename`)
VIEW_PERMISSION = {
    **{kind: "cleave.view_sagainstance" for kind in SAGA_KINDS},
    DEAD_LETTER: "cleave.view_deadletter",
    OUTBOX_LAGGING: "cleave.view_outboxevent",
}

# how many rows of one kind one context lists (the counts are exact)
LIMIT = 25
# `event_counts` counts published events up to this many, and estimates past it
EXACT_UP_TO = 10_000


# --- links to where an operator acts ---------------------------------------------------------


def admin_url(model: str, pk: Any = None, *, context: str | None = None, **filters: Any) -> str:
    """
    The admin page of one record (`pk`) or of a filtered list: `model` is
    `app_label.model_name` (`"orders.order"`, `"cleave.deadletter"`). Built by
    name when the model's admin is installed here, else by its path under the
    admin's root (the gateway sends `/admin/` to the process that has it).
    `context` names the alias of a platform table's row or list.
    """
    app_label, model_name = model.lower().split(".")
    name = f"admin:{app_label}_{model_name}_{'changelist' if pk is None else 'change'}"
    try:
        url = reverse(name, args=[] if pk is None else [str(pk)])
    except NoReverseMatch:
        try:
            root = reverse("admin:index")
        except NoReverseMatch:
            root = "/admin/"
        url = f"{root}{app_label}/{model_name}/" + ("" if pk is None else f"{pk}/change/")
    query = {**({"context": context} if context else {}), **filters}
    return f"{url}?{urlencode(query)}" if query else url


# --- how operators read times ------------------------------------------------------------------


def timestamp(value: datetime | None, *, empty: str = "-") -> str:
    """`2025-03-01 14:05:09 UTC`: to the second, in the current time zone, named."""
    if value is None:
        return empty
    if timezone.is_aware(value):
        value = timezone.localtime(value)
    return value.strftime("%Y-%m-%d %H:%M:%S %Z").rstrip()


def age(seconds: float | None, *, empty: str = "-") -> str:
    """An age or a wait, to the second: `45 s`, `12 min 5 s`, `3 h 20 min`, `2 d 4 h`."""
    if seconds is None:
        return empty
    whole = max(int(seconds + 0.5), 0)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


# --- what each reading means, as queries ------------------------------------------------------


def waiting() -> Q:
    """Unfinished sagas waiting for a participant (or a database) to come back."""
    return Q(state__in=UNFINISHED, wake_at__isnull=False)


def overdue(now: datetime) -> Q:
    """Unfinished sagas past their deadline (running or compensating)."""
    return Q(state__in=UNFINISHED, deadline__lt=now)


def stalled(now: datetime) -> Q:
    """Unfinished sagas due, and held by no process for more than a lease."""
    cutoff = now - timedelta(seconds=settings.CLEAVE_SAGA_LEASE_SECONDS)
    unheld = Q(lease_expires_at__lt=cutoff) | Q(
        lease_expires_at__isnull=True, updated_at__lt=cutoff
    )
    due = Q(wake_at__isnull=True) | Q(wake_at__lt=cutoff)
    return Q(state__in=UNFINISHED) & unheld & due


def saga_kinds(now: datetime) -> dict[str, Q]:
    """Each kind of saga trouble as a query; a saga matches exactly one (or none)."""
    late = Q(deadline__lt=now)
    return {
        SAGA_FAILED: Q(state=State.FAILED),
        COMPENSATION_OVERDUE: Q(state=State.COMPENSATING) & late,
        SAGA_OVERDUE: Q(state=State.RUNNING) & late,
        SAGA_STALLED: stalled(now) & ~late,
        SAGA_WAITING: waiting() & ~late & ~stalled(now),
    }


def outbox_lag_limit() -> timedelta:
    """How old a pending outbox row may be before the relay has certainly missed it."""
    return timedelta(
        seconds=float(settings.CLEAVE_EVENT_RELAY_GRACE)
        + float(settings.CLEAVE_EVENT_RELAY_INTERVAL)
    )


# --- readings of one alias ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backlog:
    pending: int
    oldest: datetime | None

    def age(self, now: datetime) -> float:
        """Seconds the oldest pending row has waited (0 when none)."""
        return (now - self.oldest).total_seconds() if self.oldest else 0.0


def outbox_backlog(alias: str) -> Backlog:
    found = (
        OutboxEvent.objects.using(alias)
        .filter(status=OutboxEvent.Status.PENDING)
        .aggregate(n=Count("id"), oldest=Min("occurred_at"))
    )
    return Backlog(pending=found["n"] or 0, oldest=found["oldest"])


def estimated_rows(model: type[Model], alias: str) -> int | None:
    """
    The rows of `model`'s table in `alias` as the database's statistics put
    them, without reading the table: PostgreSQL's planner estimate (the
    analysed rows per page times the pages the table has now), InnoDB's
    running row count. None where there is none (SQLite, a table never analysed).
    """
    connection = connections[alias]
    table = model._meta.db_table
    if connection.vendor == "postgresql":
        sql = (
            "SELECT CASE WHEN relpages > 0 THEN reltuples / relpages * "
            "(pg_relation_size(oid) / current_setting('block_size')::int) END "
            "FROM pg_class WHERE oid = to_regclass(%s)"
        )
        params = [connection.ops.quote_name(table)]
    elif connection.vendor == "mysql":
        sql = (
            "SELECT table_rows FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s"
        )
        params = [table]
    else:
        return None
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None or row[0] is None else max(int(row[0]), 0)


def event_counts(alias: str) -> dict[str, Any]:
    """
    Pending, published, retrying and dead: what `events stats` shows of one
    alias. Each is a count through the index on its status; "published",
    the whole event log, is counted up to `EXACT_UP_TO` rows and past that
    estimated from the database's statistics (the table's rows less the
    pending ones), and then named under "estimated". Counting millions of
    published rows, every time, would read their index from end to end.
    """
    outbox = OutboxEvent.objects.using(alias).order_by()
    pending = outbox.filter(status=OutboxEvent.Status.PENDING).count()
    counts: dict[str, Any] = {
        "pending": pending,
        "published": outbox.filter(status=OutboxEvent.Status.PUBLISHED)[: EXACT_UP_TO + 1].count(),
        "retrying": Delivery.objects.using(alias).filter(status=Delivery.Status.RETRYING).count(),
        "dead": open_dead_letters(alias),
    }
    if counts["published"] > EXACT_UP_TO:
        rows = estimated_rows(OutboxEvent, alias)
        if rows is None:  # no statistics: count them all
            counts["published"] = outbox.filter(status=OutboxEvent.Status.PUBLISHED).count()
        else:
            counts["published"] = max(rows - pending, counts["published"])
            counts["estimated"] = ["published"]
    return counts


def open_dead_letters(alias: str) -> int:
    return DeadLetter.objects.using(alias).filter(status=DeadLetter.Status.DEAD).count()


def unfinished_sagas(alias: str) -> dict[tuple[str, str, bool], int]:
    """Sagas running or compensating, by (type, state, waiting on a participant)."""
    rows = (
        SagaInstance.objects.using(alias)
        .filter(state__in=UNFINISHED)
        .order_by()
        .values_list("saga_type", "state", "wake_at")
    )
    counts: dict[tuple[str, str, bool], int] = {}
    for saga_type, state, wake_at in rows:
        key = (saga_type, state, wake_at is not None)
        counts[key] = counts.get(key, 0) + 1
    return counts


# --- what needs attention, across every context ---------------------------------------------


@dataclass(frozen=True)
class Item:
    """One thing that needs an operator, and the page that acts on it."""

    kind: str
    context: str
    alias: str
    ref: str  # the row's id (a saga, a dead letter), or the context for a backlog
    title: str
    detail: str
    since: datetime | None
    link: str
    # what the record concerns, for the admin to link (a saga's type and data)
    facts: dict[str, Any] = field(default_factory=dict, compare=False)

    def to_dict(self, now: datetime) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "context": self.context,
            "id": self.ref,
            "title": self.title,
            "detail": self.detail,
            "since": self.since.isoformat() if self.since else None,
            "age_seconds": round((now - self.since).total_seconds(), 3) if self.since else None,
            "link": self.link,
        }


@dataclass
class ContextState:
    """What one context's alias holds for operators, or why it could not be read."""

    label: str
    alias: str
    error: str = ""
    outbox: Backlog = Backlog(0, None)
    dead_letters: int = 0
    sagas: dict[str, int] = field(default_factory=dict)

    @property
    def available(self) -> bool:
        return not self.error

    def to_dict(self, now: datetime, kinds: set[str]) -> dict[str, Any]:
        if self.error:
            return {"available": False, "error": self.error}
        shown: dict[str, Any] = {"available": True}
        if OUTBOX_LAGGING in kinds:
            shown["outbox_pending"] = self.outbox.pending
            shown["outbox_oldest_age_seconds"] = round(self.outbox.age(now), 3)
        if DEAD_LETTER in kinds:
            shown["dead_letters"] = self.dead_letters
        sagas = {kind: self.sagas.get(kind, 0) for kind in SAGA_KINDS if kind in kinds}
        if sagas:
            shown["sagas"] = sagas
        return shown


@dataclass
class Report:
    """What needs attention in every context; `kinds`: those the reader may see."""

    checked_at: datetime
    items: list[Item]
    contexts: list[ContextState]
    kinds: set[str] = field(default_factory=lambda: set(KINDS))

    @property
    def healthy(self) -> bool:
        """Nothing needs attention (every context read, nothing found)."""
        return not self.items

    def by_kind(self) -> list[tuple[str, str, list[Item]]]:
        """(kind, heading, items) for every kind that has items, most urgent first."""
        return [
            (kind, heading, [item for item in self.items if item.kind == kind])
            for kind, heading in KINDS.items()
            if any(item.kind == kind for item in self.items)
        ]

    def count(self, kind: str) -> int:
        """How many of `kind` there are in every context (more than listed, past the limit)."""
        if kind == UNAVAILABLE:
            return sum(1 for state in self.contexts if state.error)
        if kind == DEAD_LETTER:
            return sum(state.dead_letters for state in self.contexts)
        if kind == OUTBOX_LAGGING:
            return sum(1 for item in self.items if item.kind == OUTBOX_LAGGING)
        return sum(state.sagas.get(kind, 0) for state in self.contexts)

    def only(self, kinds: set[str]) -> Report:
        """The same report, with only the items and figures of `kinds` (what a reader may see)."""
        kinds = kinds & self.kinds
        return Report(
            self.checked_at,
            [item for item in self.items if item.kind in kinds],
            self.contexts,
            kinds,
        )

    def to_dict(self) -> dict[str, Any]:
        now = self.checked_at
        return {
            "healthy": self.healthy,
            "checked_at": now.isoformat(),
            "items": [item.to_dict(now) for item in self.items],
            "counts": {kind: self.count(kind) for kind in KINDS if kind in self.kinds},
            "contexts": {state.label: state.to_dict(now, self.kinds) for state in self.contexts},
        }


def attention(*, now: datetime | None = None, limit: int = LIMIT) -> Report:
    """What needs an operator in every context of this process, most urgent first."""
    now = now or timezone.now()
    items: list[Item] = []
    contexts: list[ContextState] = []
    for cfg in all_contexts():
        found: list[Item] = []
        state = ContextState(label=cfg.label, alias=cfg.database)
        try:
            _read(state, found, now, limit)
        except DatabaseFailure as exc:
            error = f"{type(exc).__name__}: {exc}"[:300]
            logger.warning("Could not read the state of %s: %s", cfg.database, error)
            state = ContextState(label=cfg.label, alias=cfg.database, error=error)
            found = [
                Item(
                    kind=UNAVAILABLE,
                    context=cfg.label,
                    alias=cfg.database,
                    ref=cfg.label,
                    title=f"the {cfg.database} database cannot be read",
                    detail=state.error,
                    since=None,
                    link="",
                )
            ]
        contexts.append(state)
        items.extend(found)
    order = list(KINDS)
    items.sort(key=lambda item: order.index(item.kind))  # stable: contexts keep their order
    return Report(checked_at=now, items=items, contexts=contexts)


def _read(state: ContextState, items: list[Item], now: datetime, limit: int) -> None:
    alias, label = state.alias, state.label
    kinds = saga_kinds(now)
    sagas = SagaInstance.objects.using(alias)
    state.sagas = sagas.aggregate(
        **{kind: Count("pk", filter=query) for kind, query in kinds.items()}
    )
    for kind, query in kinds.items():
        if not state.sagas[kind]:
            continue
        for saga in sagas.filter(query).order_by("created_at")[:limit]:
            items.append(_saga_item(kind, label, alias, saga))

    state.dead_letters = open_dead_letters(alias)
    if state.dead_letters:
        letters = DeadLetter.objects.using(alias).filter(status=DeadLetter.Status.DEAD)
        for letter in letters.order_by("-dead_at")[:limit]:
            items.append(
                Item(
                    kind=DEAD_LETTER,
                    context=label,
                    alias=alias,
                    ref=str(letter.pk),
                    title=f"{letter.event_type} → {letter.handler or '?'}",
                    detail=f"{letter.get_reason_display()}: {_last_line(letter.error)}",
                    since=letter.dead_at,
                    link=admin_url("cleave.deadletter", letter.pk, context=alias),
                    facts={"event_id": str(letter.event_id), "attempts": letter.attempts},
                )
            )

    state.outbox = outbox_backlog(alias)
    if state.outbox.oldest and now - state.outbox.oldest > outbox_lag_limit():
        items.append(
            Item(
                kind=OUTBOX_LAGGING,
                context=label,
                alias=alias,
                ref=label,
                title=f"{state.outbox.pending} event(s) not published",
                detail=(
                    "the oldest has waited longer than the relay's grace and one sweep: "
                    "is the relay running, and the broker reachable?"
                ),
                since=state.outbox.oldest,
                link=admin_url("cleave.outboxevent", context=alias, status__exact="pending"),
            )
        )


def _saga_item(kind: str, label: str, alias: str, saga: SagaInstance) -> Item:
    if kind == SAGA_FAILED:
        since = saga.completed_at or saga.updated_at
        detail = f"reason {saga.failure_reason or '-'}; retry or compensate it"
    elif kind in (COMPENSATION_OVERDUE, SAGA_OVERDUE):
        since = saga.deadline
        detail = saga.last_error or f"step {saga.current_step}, past its deadline"
    elif kind == SAGA_STALLED:
        since = saga.lease_expires_at or saga.updated_at
        detail = f"no process holds it (step {saga.current_step}); resume it"
    else:
        since = saga.updated_at
        detail = saga.last_error + (
            f" (calls again at {saga.wake_at.isoformat()})" if saga.wake_at else ""
        )
    reason = f", {saga.failure_reason}" if saga.failure_reason else ""
    return Item(
        kind=kind,
        context=label,
        alias=alias,
        ref=str(saga.pk),
        title=f"{saga.saga_type} {saga.pk} ({saga.state}{reason})",
        detail=detail,
        since=since,
        link=admin_url("cleave.sagainstance", saga.pk, context=alias),
        facts={"saga_type": saga.saga_type, "data": saga.data},
    )


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:300] if lines else "-"
