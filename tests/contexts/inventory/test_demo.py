from decimal import Decimal

from cleave.testing import flows
from contexts.catalog import commands as catalog
from contexts.inventory import commands, demo
from contexts.inventory.models import StockItem

pytestmark = flows


def make_catalog(count: int) -> list[str]:
    """Products made through the catalog's own command, as the demo seeding finds them."""
    catalog.category_create(slug="misc", name="Misc")
    skus = [f"MSC-{n:03d}" for n in range(count)]
    for sku in skus:
        catalog.product_create(
            sku=sku, name=f"Thing {sku}", price=Decimal("1.00"), category_slug="misc"
        )
    return skus


def test_demo_seed_stocks_every_catalog_product_across_pages():
    skus = make_catalog(23)  # two pages of the catalog's list

    summary = demo.seed()

    stocked = StockItem.objects.using("inventory").order_by("sku")
    assert [item.sku for item in stocked] == skus
    assert {(item.on_hand, item.reserved) for item in stocked} == {(100, 0)}
    assert summary == "23 SKUs stocked (23 new, 100 units each)"


def test_demo_seed_is_idempotent_and_never_resets_existing_stock():
    make_catalog(3)
    demo.seed()
    commands.stock_set(sku="MSC-001", on_hand=7)

    summary = demo.seed()

    assert summary == "3 SKUs stocked (0 new, 100 units each)"
    assert StockItem.objects.using("inventory").count() == 3
    assert StockItem.objects.using("inventory").get(sku="MSC-001").on_hand == 7


def test_demo_seed_with_an_empty_catalog_stocks_nothing():
    assert demo.seed() == "0 SKUs stocked (0 new, 100 units each)"
    assert not StockItem.objects.using("inventory").exists()
