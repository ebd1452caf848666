"""Write side of the analytics context: fold events into the read model."""

from __future__ import annotations

import logging
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from .apps import ALIAS
from .models import Counter, ProductSales

logger = logging.getLogger(__name__)


def counter_add(*, name: str, amount: Decimal | int = 1) -> None:
    """Add `amount` to a counter, creating it first if it does not exist yet."""
    # no savepoint of its own inside a handler's transaction: a failure fails it all
    with transaction.atomic(using=ALIAS, savepoint=False):
        _add(Counter, {"name": name}, {}, value=F("value") + Decimal(amount))


def order_confirmed_record(*, lines: list[dict], total: str, currency: str) -> None:
    """Count a confirmed order, its revenue and every line's product sales."""
    counts_revenue = currency == settings.CLEAVE_CURRENCY
    if not counts_revenue:
        # summing two currencies would give a meaningless figure
        logger.warning(
            "Order revenue in %s is not counted; analytics reports %s",
            currency,
            settings.CLEAVE_CURRENCY,
        )
    with transaction.atomic(using=ALIAS, savepoint=False):
        counter_add(name=Counter.ORDERS_CONFIRMED)
        if counts_revenue:
            counter_add(name=Counter.REVENUE, amount=Decimal(total))
        for line in lines:
            product_sales_add(
                product_id=line["product_id"],
                sku=line["sku"],
                quantity=int(line["quantity"]),
                revenue=Decimal(line["line_total"]) if counts_revenue else Decimal(0),
            )


def product_sales_add(*, product_id: UUID, sku: str, quantity: int, revenue: Decimal) -> None:
    with transaction.atomic(using=ALIAS, savepoint=False):
        _add(
            ProductSales,
            {"product_id": product_id},
            {"sku": sku},
            sku=sku,
            quantity=F("quantity") + quantity,
            revenue=F("revenue") + revenue,
        )


def _add(model, key: dict, defaults: dict, **changes) -> None:
    """
    Apply `changes` (F() increments) to the row `key`, creating it at zero first.

    The UPDATE goes first: the row exists but for the very first event, so the
    common case is one statement. F() adds in the database, so concurrent
    handlers never lose an update; a concurrent first insert is absorbed by the
    unique key (inside a savepoint, so the caller's transaction goes on).
    """
    rows = model.objects.filter(**key)
    if rows.update(**changes, updated_at=timezone.now()):
        return
    try:
        with transaction.atomic(using=ALIAS):
            model.objects.create(**key, **defaults)
    except IntegrityError:
        pass  # created concurrently: the update below adds to it
    rows.update(**changes, updated_at=timezone.now())


def analytics_reset() -> None:
    """
    Empty the read model, to rebuild it by replaying the event log
    (`events replay --subscriber analytics --reset`, which forgets the inbox
    records of this context's handlers in the same transaction).
    """
    with transaction.atomic(using=ALIAS):
        Counter.objects.all().delete()
        ProductSales.objects.all().delete()
