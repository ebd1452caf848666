"""Demo stock: 100 units of every catalog product (idempotent)."""

from __future__ import annotations

from django.db import transaction

from cleave.calls.client import ServiceClient
from contracts import catalog

from .apps import ALIAS
from .models import StockItem

DEMO_ON_HAND = 100


def catalog_skus() -> list[str]:
    """Every SKU in the catalog, read page by page through its public API."""
    client = ServiceClient("catalog", caller="inventory")
    skus: list[str] = []
    page = 1
    while True:
        body = client.call(catalog.PRODUCT_LIST, params={"page": page}).raise_for_status().json()
        skus.extend(product["sku"] for product in body["results"])
        if not body.get("next"):
            return skus
        page += 1


def seed() -> str:
    """Stock each catalog SKU that has no stock row yet; never reset an existing one."""
    skus = catalog_skus()
    created = 0
    for sku in skus:
        with transaction.atomic(using=ALIAS):
            _, new = StockItem.objects.get_or_create(sku=sku, defaults={"on_hand": DEMO_ON_HAND})
        created += new
    return f"{len(skus)} SKUs stocked ({created} new, {DEMO_ON_HAND} units each)"
