"""
Write side of the inventory context.

Holding stock is a conditional UPDATE per SKU (`reserved + q <= on_hand` in the
WHERE clause), issued in SKU order inside one transaction. The database
re-evaluates that condition on the latest committed row before it writes
(PostgreSQL and InnoDB at READ COMMITTED; SQLite serialises writers), so two
checkouts racing for the last unit can never both win, whichever process they
run in, and the fixed order keeps concurrent multi-line reservations from
deadlocking. No process-local lock is involved.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from cleave.core.errors import Conflict, NotFound, invalid
from cleave.messaging.publish import publish
from contracts import inventory

from .apps import ALIAS
from .models import Reservation, ReservationLine, StockItem

logger = logging.getLogger(__name__)


MAX_LINES = 100
MAX_QUANTITY = 1_000_000
# Far below the 32-bit column limit, so `reserved + quantity` can never overflow.
MAX_ON_HAND = 1_000_000_000
SKU_MAX_LENGTH = 64
REASON_MAX_LENGTH = 64
IDEMPOTENCY_KEY_MAX_LENGTH = 255


class OutOfStock(Conflict):
    code = "out-of-stock"
    title = "Out of stock"


def _check_sku(sku: Any, field: str = "sku") -> str:
    if not isinstance(sku, str) or not sku.strip():
        raise invalid(field, "This field may not be blank.")
    if len(sku) > SKU_MAX_LENGTH:
        raise invalid(field, f"Ensure this field has no more than {SKU_MAX_LENGTH} characters.")
    return sku


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def merge_lines(lines: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Validate `[{sku, quantity}, ...]` and sum duplicate SKUs, in SKU order."""
    lines = list(lines or [])
    if not lines:
        raise invalid("lines", "At least one line is required.")
    if len(lines) > MAX_LINES:
        raise invalid("lines", f"Ensure there are no more than {MAX_LINES} lines.")
    merged: dict[str, int] = {}
    for index, line in enumerate(lines):
        sku = _check_sku(line.get("sku"), f"lines.{index}.sku")
        quantity = line.get("quantity")
        if not _is_int(quantity) or quantity < 1:
            raise invalid(f"lines.{index}.quantity", "Ensure this is a whole number of at least 1.")
        merged[sku] = merged.get(sku, 0) + quantity
        if merged[sku] > MAX_QUANTITY:
            raise invalid(f"lines.{index}.quantity", f"No more than {MAX_QUANTITY} of one SKU.")
    return dict(sorted(merged.items()))


def _check_uuid(value: Any, field: str) -> UUID:
    try:
        return value if isinstance(value, UUID) else UUID(str(value))
    except ValueError as exc:
        raise invalid(field, "Must be a valid UUID.") from exc


def _lines_payload(lines: Mapping[str, int]) -> list[dict[str, Any]]:
    return [{"sku": sku, "quantity": quantity} for sku, quantity in lines.items()]


def _reservation_lines(reservation: Reservation) -> dict[str, int]:
    rows = list(ReservationLine.objects.filter(reservation=reservation))
    reservation.keep_lines(rows)
    return {row.sku: row.quantity for row in reservation.line_items}


# --- stock -----------------------------------------------------------------------


def stock_set(*, sku: str, on_hand: int) -> StockItem:
    """Set the stock on hand of a SKU, creating its row; never below what is reserved."""
    sku = _check_sku(sku)
    if not _is_int(on_hand) or not 0 <= on_hand <= MAX_ON_HAND:
        raise invalid("on_hand", f"Ensure this is a whole number from 0 to {MAX_ON_HAND}.")
    for attempt in range(2):
        try:
            with transaction.atomic(using=ALIAS):
                item = StockItem.objects.select_for_update().filter(sku=sku).first()
                if item is None:
                    return StockItem.objects.create(sku=sku, on_hand=on_hand)
                if on_hand < item.reserved:
                    raise Conflict(
                        f"{item.reserved} of {sku} are reserved; on hand cannot drop to {on_hand}.",
                        code="below-reserved",
                        errors={"on_hand": [f"Must be at least {item.reserved}."]},
                    )
                item.on_hand = on_hand
                item.save(update_fields=["on_hand", "updated_at"])
                return item
        except IntegrityError:
            if attempt:  # created concurrently twice in a row: give up loudly
                raise
            # another writer created the row first; lock and update it instead
    raise AssertionError("unreachable")


# --- reservations ------------------------------------------------------------------


def _reservation_ttl(ttl_seconds: int | None) -> int:
    if ttl_seconds is None:
        ttl_seconds = settings.CLEAVE_RESERVATION_TTL
    if not _is_int(ttl_seconds) or ttl_seconds < 1:
        raise invalid("ttl_seconds", "Ensure this is a whole number of at least 1.")
    return ttl_seconds


def _replayed(reservation: Reservation, *, order_id: UUID, lines: dict[str, int]) -> Reservation:
    """The reservation first made with an idempotency key, if the request is the same."""
    if reservation.order_id != order_id or _reservation_lines(reservation) != lines:
        raise Conflict(
            "This Idempotency-Key was already used for a different reservation.",
            code="idempotency-key-reused",
        )
    return reservation


def _by_key(idempotency_key: str) -> Reservation | None:
    return Reservation.objects.filter(idempotency_key=idempotency_key).first()


def _hold(sku: str, quantity: int, now: datetime) -> bool:
    """Reserve `quantity` of `sku` if that much is available; False if unknown or short."""
    return bool(
        StockItem.objects.filter(sku=sku, on_hand__gte=F("reserved") + quantity).update(
            reserved=F("reserved") + quantity, updated_at=now
        )
    )


def reservation_create(
    *,
    order_id: UUID,
    lines: Iterable[Mapping[str, Any]],
    idempotency_key: str | None = None,
    ttl_seconds: int | None = None,
) -> tuple[Reservation, bool]:
    """
    Hold stock for every line of an order, all or nothing; publish `inventory.reserved`.

    Returns `(reservation, created)`. A repeated `idempotency_key` returns the
    first reservation with `created=False` and holds nothing again. Raises
    `OutOfStock` (a Conflict, `errors.lines` naming the short SKUs) when any SKU is
    unknown or short; then nothing is held.
    """
    order_id = _check_uuid(order_id, "order_id")
    wanted = merge_lines(lines)
    ttl = _reservation_ttl(ttl_seconds)
    key = idempotency_key or None
    if key is not None and len(key) > IDEMPOTENCY_KEY_MAX_LENGTH:
        raise invalid(
            "idempotency_key",
            f"Ensure this has no more than {IDEMPOTENCY_KEY_MAX_LENGTH} characters.",
        )
    try:
        with transaction.atomic(using=ALIAS):
            now = timezone.now()
            # The row goes first: a repeated key fails on the unique index
            # before anything is held (the first reservation is then returned),
            # and a concurrent request with the same key waits on that index
            # instead of holding stock it would give back.
            reservation = Reservation.objects.create(
                order_id=order_id,
                idempotency_key=key,
                expires_at=now + timedelta(seconds=ttl),
                created_at=now,
            )
            short = [sku for sku, quantity in wanted.items() if not _hold(sku, quantity, now)]
            if short:
                # leaving the block with an exception rolls back every line held above
                raise OutOfStock(
                    f"Not enough stock for {', '.join(short)}.", errors={"lines": short}
                )
            reservation.keep_lines(
                ReservationLine.objects.bulk_create(
                    ReservationLine(reservation=reservation, sku=sku, quantity=quantity)
                    for sku, quantity in wanted.items()
                )
            )
            publish(
                inventory.INVENTORY_RESERVED,
                {
                    "reservation_id": reservation.id,
                    "order_id": reservation.order_id,
                    "lines": _lines_payload(wanted),
                    "expires_at": reservation.expires_at,
                },
            )
    except IntegrityError:
        existing = _by_key(key) if key is not None else None
        if existing is None:
            raise
        # a repeated request, or a concurrent one with the same key that committed first
        return _replayed(existing, order_id=order_id, lines=wanted), False
    return reservation, True


def _locked(reservation_id: UUID) -> Reservation:
    reservation = Reservation.objects.select_for_update().filter(pk=reservation_id).first()
    if reservation is None:
        raise NotFound(f"No reservation {reservation_id}.")
    return reservation


def reservation_commit(*, reservation_id: UUID) -> Reservation:
    """
    Turn a held reservation into a sale: the stock leaves the shelf.

    Publishes `inventory.committed`. Committing again changes nothing; a
    released reservation cannot be committed (Conflict).
    """
    # A reservation's lines never change once written: read them, joined to
    # the reservation, before the transaction, which then holds the write lock
    # only to decide and to move the stock.
    rows = list(
        ReservationLine.objects.filter(reservation_id=reservation_id).select_related("reservation")
    )
    with transaction.atomic(using=ALIAS):
        now = timezone.now()
        # conditional, so it takes the row lock and decides in one statement
        held = Reservation.objects.filter(pk=reservation_id, status=Reservation.Status.HELD).update(
            status=Reservation.Status.COMMITTED, updated_at=now
        )
        if not held:
            reservation = _locked(reservation_id)
            if reservation.status == Reservation.Status.COMMITTED:
                return reservation
            raise Conflict(
                f"Reservation {reservation_id} was {reservation.status} "
                f"({reservation.release_reason}) and can no longer be committed.",
                code="reservation-released",
            )
        if rows:  # as the update left it
            reservation = rows[0].reservation
            reservation.status = Reservation.Status.COMMITTED
            reservation.updated_at = now
        else:
            reservation = Reservation.objects.get(pk=reservation_id)
        reservation.keep_lines(rows)
        lines = {row.sku: row.quantity for row in reservation.line_items}
        for sku, quantity in lines.items():
            moved = StockItem.objects.filter(sku=sku, reserved__gte=quantity).update(
                on_hand=F("on_hand") - quantity,
                reserved=F("reserved") - quantity,
                updated_at=now,
            )
            if not moved:
                # Only a hand edit of the stock table can cause this; refuse
                # rather than sell stock that is not accounted for.
                raise Conflict(
                    f"The stock of {sku} no longer holds this reservation.",
                    code="stock-inconsistent",
                )
        publish(
            inventory.INVENTORY_COMMITTED,
            {
                "reservation_id": reservation.id,
                "order_id": reservation.order_id,
                "lines": _lines_payload(lines),
            },
        )
    return reservation


def _check_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise invalid("reason", "This field may not be blank.")
    if len(reason) > REASON_MAX_LENGTH:
        raise invalid("reason", f"Ensure this has no more than {REASON_MAX_LENGTH} characters.")
    return reason


def _release(reservation_id: UUID, reason: str) -> tuple[Reservation, bool]:
    reason = _check_reason(reason)
    with transaction.atomic(using=ALIAS):
        reservation = _locked(reservation_id)
        if reservation.status in (Reservation.Status.RELEASED, Reservation.Status.RETURNED):
            return reservation, False
        if reservation.status == Reservation.Status.COMMITTED:
            raise Conflict(
                f"Reservation {reservation_id} is committed and can no longer be released.",
                code="reservation-committed",
            )
        lines = _reservation_lines(reservation)
        now = timezone.now()
        for sku, quantity in lines.items():
            restored = StockItem.objects.filter(sku=sku, reserved__gte=quantity).update(
                reserved=F("reserved") - quantity, updated_at=now
            )
            if not restored:
                # The stock row was edited or deleted by hand. Releasing must
                # still succeed: compensations depend on it.
                logger.warning(
                    "Releasing reservation %s: stock of %s did not hold %s",
                    reservation_id,
                    sku,
                    quantity,
                )
        reservation.status = Reservation.Status.RELEASED
        reservation.release_reason = reason
        reservation.save(update_fields=["status", "release_reason", "updated_at"])
        publish(
            inventory.INVENTORY_RELEASED,
            {
                "reservation_id": reservation.id,
                "order_id": reservation.order_id,
                "lines": _lines_payload(lines),
                "reason": reason,
            },
        )
    return reservation, True


def reservation_release(*, reservation_id: UUID, reason: str = "released") -> Reservation:
    """
    Give a held reservation's stock back; publish `inventory.released`.

    Releasing again (or releasing a returned one) changes nothing; a
    committed reservation cannot be released (Conflict).
    """
    reservation, _ = _release(reservation_id, reason)
    return reservation


def reservation_return(*, reservation_id: UUID, reason: str = "returned") -> Reservation:
    """
    Put a committed reservation's stock back on the shelf; publish `inventory.returned`.

    Used when a confirmed order is refunded before its goods left. Returning
    again changes nothing; a held or released reservation took nothing off
    the shelf, so it is returned unchanged.
    """
    reason = _check_reason(reason)
    with transaction.atomic(using=ALIAS):
        reservation = _locked(reservation_id)
        if reservation.status != Reservation.Status.COMMITTED:
            return reservation
        lines = _reservation_lines(reservation)
        now = timezone.now()
        for sku, quantity in lines.items():
            restocked = StockItem.objects.filter(sku=sku).update(
                on_hand=F("on_hand") + quantity, updated_at=now
            )
            if not restocked:  # the SKU's row was deleted by hand: nothing to put back on
                logger.warning("Returning reservation %s: no stock row for %s", reservation_id, sku)
        reservation.status = Reservation.Status.RETURNED
        reservation.release_reason = reason
        reservation.save(update_fields=["status", "release_reason", "updated_at"])
        publish(
            inventory.INVENTORY_RETURNED,
            {
                "reservation_id": reservation.id,
                "order_id": reservation.order_id,
                "lines": _lines_payload(lines),
                "reason": reason,
            },
        )
    return reservation


def reservations_release_expired(*, now: datetime | None = None, limit: int = 500) -> int:
    """Release held reservations whose time ran out (reason `expired`); return how many."""
    now = now or timezone.now()
    due = list(
        Reservation.objects.filter(status=Reservation.Status.HELD, expires_at__lte=now)
        .order_by("expires_at")
        .values_list("id", flat=True)[:limit]
    )
    released = 0
    for reservation_id in due:
        try:
            _, changed = _release(reservation_id, "expired")
        except Conflict:
            continue  # committed in the meantime: the sale stands
        if changed:
            released += 1
    return released
