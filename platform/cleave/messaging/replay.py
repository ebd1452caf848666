"""
Replaying the event log, how long it is kept, and erasing a person from it.

Every context's outbox keeps its committed events after delivery: together
they are the event log. `replay()` reads the outbox of every local context,
merges them in commit order and hands each event to one subscribing
context's handlers, in this process, one after the other.

Commit order is approximated by `(occurred_at, id)`: `occurred_at` is taken
when `publish()` runs inside the business transaction, so two transactions
committing at nearly the same moment may appear in the order they published
rather than the order they committed, and events of one transaction sharing a
timestamp are ordered by their (random) id. Handlers must not depend on a finer
order than that (see docs/events.md, "Ordering").

The inbox still applies: replaying what a subscriber already applied is a
no-op, so replay fills gaps. To rebuild a read model from scratch, `reset`
first calls the subscribing context's reset hook: a `replay` module in the
context package with a `reset()` function that empties the read model and the
context's inbox records.

`prune()` deletes what is settled and old; `redact()` overwrites personal
fields of the events about one person (a deleted customer) in place.
"""

from __future__ import annotations

import fnmatch
import heapq
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.db import transaction
from django.utils import timezone

from cleave.core.registry import ContextConfig, all_contexts, get_context
from cleave.messaging import delivery, subscriptions
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent

logger = logging.getLogger("cleave.events")


class ReplayError(Exception):
    """Replay cannot run as asked (unknown subscriber, no reset hook)."""


def reset_hook(cfg: ContextConfig):
    """The `reset()` of a context's `replay` module, or None."""
    name = f"{cfg.name}.replay"
    try:
        module = import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            return None
        raise
    return getattr(module, "reset", None)


def event_log(
    *, type_pattern: str | None = None, since: datetime | None = None, chunk: int = 500
) -> Iterator[Envelope]:
    """Every local outbox's events, merged in commit order, optionally filtered."""

    def rows(alias: str):
        query = OutboxEvent.objects.using(alias).order_by("occurred_at", "id")
        if since is not None:
            query = query.filter(occurred_at__gte=since)
        if type_pattern and not set("*?[") & set(type_pattern):
            query = query.filter(type=type_pattern)
        for row in query.iterator(chunk_size=chunk):
            yield (row.occurred_at, str(row.id)), row

    streams = [rows(cfg.database) for cfg in all_contexts()]
    for _key, row in heapq.merge(*streams, key=lambda item: item[0]):
        if type_pattern and not fnmatch.fnmatchcase(row.type, type_pattern):
            continue
        yield row.envelope()


@dataclass
class ReplayReport:
    subscriber: str
    reset: bool = False
    events: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


def replay(
    subscriber: str,
    *,
    type_pattern: str | None = None,
    since: datetime | None = None,
    reset: bool = False,
) -> ReplayReport:
    """
    Deliver the event log again, in commit order, to one subscribing context.

    With `reset`, the context's read model and inbox are emptied first, so
    every event is applied again: the read model is rebuilt from scratch.
    Emptying before reading the log means an event committed meanwhile is
    either in the log or delivered live, and the inbox drops the second copy.
    """
    try:
        cfg = get_context(subscriber)
    except LookupError:
        raise ReplayError(f"No local context {subscriber!r}") from None
    subs = [s for s in subscriptions.all_subscriptions() if _owner(s) == cfg.label]
    if not subs:
        raise ReplayError(f"Context {subscriber!r} subscribes to no event")
    report = ReplayReport(subscriber=cfg.label, reset=reset)
    if reset:
        reset_read_model(cfg, subs)
    for envelope in event_log(type_pattern=type_pattern, since=since):
        matching = [s for s in subs if s.matches(envelope.type)]
        if not matching:
            continue
        report.events += 1
        for sub in matching:
            report.count(delivery.consume(sub, envelope, force=True).outcome)
    return report


def reset_read_model(
    cfg: ContextConfig, subs: list[subscriptions.Subscription] | None = None
) -> None:
    """
    Empty a context's read model (its `replay.reset()` hook) and forget the
    inbox records of its handlers, in one transaction: an event delivered live
    in between would otherwise count twice, and a replay would skip events the
    inbox still remembers.
    """
    hook = reset_hook(cfg)
    if hook is None:
        raise ReplayError(
            f"Context {cfg.label!r} has no reset hook ({cfg.name}.replay.reset): "
            "replay without --reset only fills gaps"
        )
    if subs is None:
        subs = [s for s in subscriptions.all_subscriptions() if _owner(s) == cfg.label]
    with transaction.atomic(using=cfg.database):
        hook()
        InboxRecord.objects.using(cfg.database).filter(
            handler__in=[sub.name for sub in subs]
        ).delete()
    logger.warning("Reset the read model of %s for a replay", cfg.label)


def _owner(sub: subscriptions.Subscription) -> str | None:
    try:
        return sub.context.label
    except LookupError:
        return None


# --- retention ----------------------------------------------------------------------


@dataclass
class PruneReport:
    alias: str
    outbox: int = 0
    inbox: int = 0
    deliveries: int = 0
    dead_letters: int = 0


def prune(alias: str, *, older_than: timedelta, dry_run: bool = False) -> PruneReport:
    """
    Delete what is older than `older_than` and settled in one alias.

    - outbox rows that are published (a pending row is never deleted, however old);
    - inbox records (choose a retention longer than any event can stay in
      flight: an event redelivered after its inbox record is gone is applied again);
    - deliveries that finally applied, and dead letters resolved by a redrive.

    Dead letters still dead and deliveries still retrying are kept. What is
    pruned from the outbox can no longer be replayed.
    """
    cutoff = timezone.now() - older_than
    queries = {
        "outbox": OutboxEvent.objects.using(alias).filter(
            status=OutboxEvent.Status.PUBLISHED, occurred_at__lt=cutoff, published_at__lt=cutoff
        ),
        "inbox": InboxRecord.objects.using(alias).filter(processed_at__lt=cutoff),
        "deliveries": Delivery.objects.using(alias).filter(
            status=Delivery.Status.APPLIED, updated_at__lt=cutoff
        ),
        "dead_letters": DeadLetter.objects.using(alias).filter(
            status=DeadLetter.Status.RESOLVED, dead_at__lt=cutoff
        ),
    }
    report = PruneReport(alias=alias)
    with transaction.atomic(using=alias):
        for name, query in queries.items():
            count = query.count() if dry_run else query.delete()[0]
            setattr(report, name, count)
    return report


def redact(alias: str, *, type_prefix: str, match: dict[str, str], replace: dict[str, Any]) -> int:
    """
    Overwrite personal data in the copies of events an alias keeps: its
    outbox (the event log, which replay reads), and the envelopes of its
    deliveries and dead letters. Rows whose type starts with `type_prefix`
    and whose payload has every `match` item are rewritten, and of
    `replace` only the keys an event already has, so each keeps a payload
    its schema accepts and a replay still runs. Returns the rows rewritten.

    For erasure: a context that forgets a person (`user.deleted`) redacts
    what it published about them, and what it holds of others' events.
    """
    outbox_filter = {f"data__{key}": value for key, value in match.items()}
    envelope_filter = {f"envelope__data__{key}": value for key, value in match.items()}
    rewritten = 0
    with transaction.atomic(using=alias):
        rows = OutboxEvent.objects.using(alias).filter(
            type__startswith=type_prefix, **outbox_filter
        )
        for row in rows.select_for_update():
            data = _redacted(row.data, replace)
            if data != row.data:
                OutboxEvent.objects.using(alias).filter(pk=row.pk).update(data=data)
                rewritten += 1
        for model in (Delivery, DeadLetter):
            kept = model.objects.using(alias).filter(
                event_type__startswith=type_prefix, **envelope_filter
            )
            for row in kept.select_for_update():
                envelope = dict(row.envelope)
                data = _redacted(envelope.get("data") or {}, replace)
                if data != envelope.get("data"):
                    envelope["data"] = data
                    model.objects.using(alias).filter(pk=row.pk).update(envelope=envelope)
                    rewritten += 1
    return rewritten


def _redacted(data: dict[str, Any], replace: dict[str, Any]) -> dict[str, Any]:
    return {key: replace.get(key, value) for key, value in data.items()}
