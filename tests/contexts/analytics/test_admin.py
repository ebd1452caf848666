"""The analytics admin: a product's sales link to the product in the catalog."""

from __future__ import annotations

from cleave.testing import unit
from tests.contexts.analytics.factories import ProductSalesFactory
from tests.contexts.catalog.factories import ProductFactory
from tests.support.links import follow

pytestmark = unit

SALES = "/admin/analytics/productsales/"


def test_a_products_sales_link_to_the_product(admin_client):
    product = ProductFactory(name="Blue mug")
    sales = ProductSalesFactory(product_id=product.id, sku=product.sku)

    page = admin_client.get(f"{SALES}{sales.pk}/change/").content.decode()
    listed = admin_client.get(SALES).content.decode()

    assert "Blue mug" in follow(admin_client, page, str(product.id))
    assert "Blue mug" in follow(admin_client, listed, str(product.id))
