"""Write side of the analytics context: fold events into the read model."""

from __future__ import annotations

import logging
from decimal import Decimal
from uuid import UUID

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from cleave.events.models import InboxRecord

from .models import Counter, ProductSales

ALIAS = "analytics"

logger = logging.getLogger(__name__)


def counter_add(*, name: str, amount: Decimal | int = 1) -> None:
    """Add `amount` to a counter, creating it at zero first."""
    with transaction.atomic(using=ALIAS):
        Counter.objects.using(ALIAS).get_or_create(name=name)
        # F() adds in the database, so concurrent handlers never lose an update
        Counter.objects.using(ALIAS).filter(name=name).update(
            value=F("value") + Decimal(amount), updated_at=timezone.now()
        )


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
    with transaction.atomic(using=ALIAS):
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
    with transaction.atomic(using=ALIAS):
        ProductSales.objects.using(ALIAS).get_or_create(
            product_id=product_id, defaults={"sku": sku}
        )
        ProductSales.objects.using(ALIAS).filter(product_id=product_id).update(
            sku=sku,
            quantity=F("quantity") + quantity,
            revenue=F("revenue") + revenue,
            updated_at=timezone.now(),
        )


def analytics_reset() -> None:
    """
    Empty the read model, to rebuild it by replaying the event log.

    The inbox records of this context's handlers go too: otherwise the replayed
    events would be recognised as already applied and skipped.
    """
    with transaction.atomic(using=ALIAS):
        Counter.objects.using(ALIAS).all().delete()
        ProductSales.objects.using(ALIAS).all().delete()
        InboxRecord.objects.using(ALIAS).filter(
            handler__startswith=f"{__package__}.handlers."
        ).delete()
