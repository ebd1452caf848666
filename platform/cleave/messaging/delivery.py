"""
The subscriber side of every transport: run one handler for one event, and
decide what a failure means.

- success: the inbox row and the handler's effect commit together (`cleave.messaging.inbox`);
- a payload that fails the publisher's schema for the version its envelope
  names, or that carries no version the handler can read
  (`cleave.messaging.versions`): dead-lettered at once, it would fail every
  attempt;
- any other exception: a `Delivery` row in the subscriber's alias counts the
  attempt and schedules the next one with exponential backoff and jitter;
  after `CLEAVE_EVENT_MAX_ATTEMPTS` attempts the event is dead-lettered with
  the handler's name, the error and the traceback.

Transports only decide *where* an attempt runs (this process, a Celery
worker); the bookkeeping is the same for all of them.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from cleave.core import db, declarations
from cleave.core.backoff import delay as backoff_delay
from cleave.core.errors import is_technical
from cleave.messaging import inbox, subscriptions, versions
from cleave.messaging.envelope import Envelope
from cleave.messaging.models import DeadLetter, Delivery
from cleave.observability.metrics import EVENT_HANDLER_DURATION, EVENTS_DELIVERED

logger = logging.getLogger("cleave.events")

# A retry message scheduled for `next_attempt_at` may arrive a little early
# (clocks of two hosts, timer resolution): treat it as due.
DUE_TOLERANCE = timedelta(seconds=1)


class Outcome:
    APPLIED = "applied"  # the handler ran and committed
    DUPLICATE = "duplicate"  # the inbox already had it
    RETRY = "retry"  # failed; a Delivery row schedules the next attempt
    DEAD = "dead"  # failed for good; a DeadLetter row keeps it
    SKIPPED = "skipped"  # not due yet, or already dead: someone else owns it


@dataclass(frozen=True)
class Result:
    handler: str
    context: str
    outcome: str
    next_attempt_at: datetime | None = None
    error: str = ""


def max_attempts() -> int:
    return max(1, int(settings.CLEAVE_EVENT_MAX_ATTEMPTS))


def backoff(attempt: int) -> float:
    """
    Seconds to wait after failed attempt number `attempt` (1-based).

    The platform's one backoff (`cleave.core.backoff`) from
    CLEAVE_EVENT_RETRY_BASE, capped at CLEAVE_EVENT_RETRY_MAX, so retries of
    many events that failed together spread out instead of hammering a
    recovering service.
    """
    return backoff_delay(
        attempt,
        base=float(settings.CLEAVE_EVENT_RETRY_BASE),
        cap=float(settings.CLEAVE_EVENT_RETRY_MAX),
    )


def consume(
    sub: subscriptions.Subscription, envelope: Envelope, *, force: bool = False, fresh: bool = False
) -> Result:
    """
    Attempt `sub` on `envelope` once, recording the outcome in the subscriber's alias.

    Without `force`, an event this handler already dead-lettered, or whose next
    attempt is not due, is left alone: a retry (or an operator) owns it.
    `force` (redrive, replay) attempts it anyway. `fresh`: the first attempt
    at an event this process has just published and validated, which no
    delivery record can know of yet (the in-process fast path). Never raises
    for a handler's failure; a database that is down while recording it does raise.
    """
    alias = sub.context.database
    label = sub.context.label
    try:
        if fresh:
            return _counted(envelope, _attempt(sub, envelope, alias, label, None, validated=True))
        delivery = (
            Delivery.objects.using(alias).filter(event_id=envelope.id, handler=sub.name).first()
        )
        return _counted(envelope, _consume(sub, envelope, alias, label, delivery, force=force))
    finally:
        # a pooled connection goes back now, not when the publisher's request ends
        db.release(alias)


def consume_many(sub: subscriptions.Subscription, envelopes: list[Envelope]) -> list[Result]:
    """
    `consume()` for the events of one message, one result per envelope.

    Which of them have a delivery record is read with one query (usually
    none has: a record exists only once a handler failed); then every event
    is attempted on its own, in its own transaction, as by `consume()`.
    """
    alias = sub.context.database
    label = sub.context.label
    ids = [uuid.UUID(str(envelope.id)) for envelope in envelopes]
    known = {}
    # a worker asks this for every message: one prepared statement (cleave.core.db)
    recorded = db.values(Delivery, alias, "event_id", where={"handler": sub.name, "event_id": ids})
    if recorded:
        known = {
            delivery.event_id: delivery
            for delivery in Delivery.objects.using(alias).filter(
                event_id__in=recorded, handler=sub.name
            )
        }
    try:
        return [
            _counted(envelope, _consume(sub, envelope, alias, label, known.get(event_id)))
            for envelope, event_id in zip(envelopes, ids, strict=True)
        ]
    finally:
        db.release(alias)


def _counted(envelope: Envelope, result: Result) -> Result:
    EVENTS_DELIVERED.labels(envelope.type, result.context, result.outcome).inc()
    return result


def _consume(
    sub: subscriptions.Subscription,
    envelope: Envelope,
    alias: str,
    label: str,
    delivery,
    *,
    force: bool = False,
) -> Result:
    """Attempt unless the delivery record says someone else owns this event."""
    now = timezone.now()
    if delivery is not None and not force:
        if delivery.status == Delivery.Status.DEAD:
            return Result(sub.name, label, Outcome.SKIPPED)
        if delivery.status == Delivery.Status.APPLIED:
            return Result(sub.name, label, Outcome.DUPLICATE)
        if delivery.next_attempt_at and delivery.next_attempt_at > now + DUE_TOLERANCE:
            return Result(sub.name, label, Outcome.SKIPPED, delivery.next_attempt_at)
    return _attempt(sub, envelope, alias, label, delivery)


def _attempt(
    sub: subscriptions.Subscription,
    envelope: Envelope,
    alias: str,
    label: str,
    delivery,
    *,
    validated: bool = False,
) -> Result:
    attempt = (delivery.attempts if delivery else 0) + 1
    try:
        handed = versions.shaped(sub, envelope, validated=validated)
    except declarations.InvalidEventPayload as exc:
        logger.error("Dead-lettering %s %s for %s: %s", envelope.type, envelope.id, sub.name, exc)
        dead_letter(
            alias,
            label,
            envelope,
            handler=sub.name,
            reason="invalid_payload",
            error=str(exc),
            tb="",
            attempts=attempt,
        )
        return Result(sub.name, label, Outcome.DEAD, error=str(exc))
    started = time.perf_counter()
    try:
        outcome = inbox.apply_validated(sub, handed)
    except Exception as exc:
        EVENT_HANDLER_DURATION.labels(label, sub.name).observe(time.perf_counter() - started)
        error = f"{type(exc).__name__}: {exc}"
        tb = traceback.format_exc()
        if attempt >= max_attempts() and not _may_wait(exc, envelope):
            logger.error(
                "Handler %s failed on %s %s (attempt %d, giving up): %s",
                sub.name,
                envelope.type,
                envelope.id,
                attempt,
                error,
            )
            dead_letter(
                alias,
                label,
                envelope,
                handler=sub.name,
                reason="handler_failed",
                error=error,
                tb=tb,
                attempts=attempt,
            )
            return Result(sub.name, label, Outcome.DEAD, error=error)
        due = timezone.now() + timedelta(seconds=backoff(attempt))
        logger.warning(
            "Handler %s failed on %s %s (attempt %d, next at %s): %s",
            sub.name,
            envelope.type,
            envelope.id,
            attempt,
            due.isoformat(),
            error,
        )
        _record_delivery(
            alias,
            label,
            envelope,
            sub.name,
            status=Delivery.Status.RETRYING,
            attempts=attempt,
            next_attempt_at=due,
            last_error=f"{error}\n{tb}"[:20000],
        )
        return Result(sub.name, label, Outcome.RETRY, due, error)
    EVENT_HANDLER_DURATION.labels(label, sub.name).observe(time.perf_counter() - started)
    if delivery is not None and delivery.status != Delivery.Status.APPLIED:
        _settle(alias, envelope, sub.name, attempts=attempt)
    return Result(sub.name, label, outcome)


def _may_wait(exc: Exception, envelope: Envelope) -> bool:
    """
    A technical failure (another context or a database unavailable) is
    retried past `CLEAVE_EVENT_MAX_ATTEMPTS` while the event is younger than
    `CLEAVE_EVENT_UNAVAILABLE_WINDOW` seconds: an outage must not dead-letter
    every event it meets. A bug is dead-lettered after the usual attempts.
    """
    if not is_technical(exc):
        return False
    window = timedelta(seconds=settings.CLEAVE_EVENT_UNAVAILABLE_WINDOW)
    try:
        published = datetime.fromisoformat(envelope.timestamp)
    except (TypeError, ValueError):
        return False
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return timezone.now() - published < window


def _record_delivery(
    alias: str, label: str, envelope: Envelope, handler: str, **values: Any
) -> None:
    defaults = {
        "context": label,
        "event_type": envelope.type,
        "source": envelope.source or "",
        "envelope": envelope.to_dict(),
        "updated_at": timezone.now(),
        **values,
    }
    with transaction.atomic(using=alias):
        _upsert(Delivery, alias, envelope.id, handler, defaults)


def _upsert(model, alias: str, event_id: str, handler: str, defaults: dict[str, Any]):
    """update_or_create that survives a concurrent insert of the same (event, handler)."""
    try:
        with transaction.atomic(using=alias):
            obj, _ = model.objects.using(alias).update_or_create(
                event_id=event_id, handler=handler, defaults=defaults
            )
            return obj
    except IntegrityError:
        model.objects.using(alias).filter(event_id=event_id, handler=handler).update(**defaults)
        return model.objects.using(alias).get(event_id=event_id, handler=handler)


def _settle(alias: str, envelope: Envelope, handler: str, *, attempts: int) -> None:
    """A handler that had failed before has now applied the event."""
    now = timezone.now()
    with transaction.atomic(using=alias):
        Delivery.objects.using(alias).filter(event_id=envelope.id, handler=handler).update(
            status=Delivery.Status.APPLIED,
            attempts=attempts,
            next_attempt_at=None,
            updated_at=now,
        )
        DeadLetter.objects.using(alias).filter(
            event_id=envelope.id, handler=handler, status=DeadLetter.Status.REDRIVEN
        ).update(status=DeadLetter.Status.RESOLVED)


def dead_letter(
    alias: str,
    label: str,
    envelope: Envelope,
    *,
    handler: str,
    reason: str,
    error: str,
    tb: str,
    attempts: int,
):
    """Keep an event a handler gave up on, with why, in the subscriber's alias."""
    now = timezone.now()
    with transaction.atomic(using=alias):
        letter = _upsert(
            DeadLetter,
            alias,
            envelope.id,
            handler,
            {
                "context": label,
                "event_type": envelope.type or "",
                "source": envelope.source or "",
                "correlation_id": envelope.correlation_id or "",
                "envelope": envelope.to_dict(),
                "reason": reason,
                "error": error[:20000],
                "traceback": tb[:50000],
                "attempts": attempts,
                "status": DeadLetter.Status.DEAD,
                "dead_at": now,
            },
        )
        if handler:
            _upsert(
                Delivery,
                alias,
                envelope.id,
                handler,
                {
                    "context": label,
                    "event_type": envelope.type or "",
                    "source": envelope.source or "",
                    "envelope": envelope.to_dict(),
                    "status": Delivery.Status.DEAD,
                    "attempts": attempts,
                    "next_attempt_at": None,
                    "last_error": f"{error}\n{tb}"[:20000],
                    "updated_at": now,
                },
            )
    return letter


def dead_letter_malformed(alias: str, label: str, raw: Any, error: str) -> None:
    """Keep a message that is not an event envelope at all (nothing can run it)."""
    raw_dict = raw if isinstance(raw, dict) else {"raw": repr(raw)[:5000]}
    try:
        event_id = str(uuid.UUID(str(raw_dict.get("id"))))
    except ValueError:
        event_id = str(uuid.uuid4())
    envelope = Envelope(
        id=event_id,
        type=str(raw_dict.get("type") or "")[:120],
        version=0,
        source=str(raw_dict.get("source") or "")[:60],
        timestamp=str(raw_dict.get("timestamp") or ""),
        data=raw_dict,
    )
    logger.error("Dead-lettering a malformed event message in %s: %s", label, error)
    dead_letter(
        alias,
        label,
        envelope,
        handler="",
        reason="malformed",
        error=error,
        tb="",
        attempts=1,
    )


# --- retries and redrives ---------------------------------------------------------


def due_deliveries(alias: str, *, overdue_by: timedelta = timedelta(0), limit: int = 200):
    """Deliveries in `alias` waiting for a retry that is due (by at least `overdue_by`)."""
    cutoff = timezone.now() - overdue_by
    return list(
        Delivery.objects.using(alias)
        .filter(status=Delivery.Status.RETRYING, next_attempt_at__lte=cutoff)
        .order_by("next_attempt_at", "id")[:limit]
    )


def subscription_named(handler: str, label: str) -> subscriptions.Subscription | None:
    for sub in subscriptions.all_subscriptions():
        if sub.name != handler:
            continue
        try:
            if sub.context.label == label:
                return sub
        except LookupError:
            continue
    return None


def retry_delivery(delivery, *, force: bool = False) -> Result:
    """Attempt one recorded delivery in this process (in-process transport, redrive)."""
    envelope = delivery.get_envelope()
    sub = subscription_named(delivery.handler, delivery.context)
    alias = delivery._state.db
    if sub is None:
        dead_letter(
            alias,
            delivery.context,
            envelope,
            handler=delivery.handler,
            reason="unknown_handler",
            error=f"No local handler named {delivery.handler!r} in {delivery.context!r}",
            tb="",
            attempts=delivery.attempts,
        )
        return Result(delivery.handler, delivery.context, Outcome.DEAD)
    return consume(sub, envelope, force=force)


def prepare_redrive(alias: str, letters) -> list:
    """
    Mark dead letters as redriven and give their deliveries a fresh set of attempts.

    Returns the Delivery rows to attempt now. Malformed messages (no handler)
    cannot be redriven and are left as they are.
    """
    now = timezone.now()
    ready = []
    for letter in letters:
        if not letter.handler or letter.status != DeadLetter.Status.DEAD:
            continue
        envelope = Envelope.from_dict(letter.envelope)
        with transaction.atomic(using=alias):
            DeadLetter.objects.using(alias).filter(pk=letter.pk).update(
                status=DeadLetter.Status.REDRIVEN,
                redriven_at=now,
                redrive_count=letter.redrive_count + 1,
            )
            delivery = _upsert(
                Delivery,
                alias,
                envelope.id,
                letter.handler,
                {
                    "context": letter.context,
                    "event_type": envelope.type,
                    "source": envelope.source or "",
                    "envelope": envelope.to_dict(),
                    "status": Delivery.Status.RETRYING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "updated_at": now,
                },
            )
        ready.append(delivery)
    return ready
