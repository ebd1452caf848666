from decimal import Decimal

import pytest

from cleave.core.errors import ApplicationError, Conflict
from cleave.http.problems import status_for
from cleave.testing import published, unit
from contexts.catalog import commands, demo
from contexts.catalog.models import Category, Product
from tests.contexts.catalog.factories import CategoryFactory, ProductFactory

pytestmark = unit


def test_product_create_stores_the_product_and_publishes_product_created():
    CategoryFactory(slug="books", name="Books")

    product = commands.product_create(
        sku="BOO-1",
        name="  A Book ",
        description="Pages.",
        price=Decimal("12.5"),
        category_slug="books",
    )

    stored = Product.objects.using("catalog").get(pk=product.id)
    assert (stored.sku, stored.name, stored.price, stored.currency) == (
        "BOO-1",
        "A Book",
        Decimal("12.50"),
        "EUR",
    )
    assert stored.active is True
    [event] = published("catalog", "product.created")
    assert event.data == {
        "product_id": str(product.id),
        "sku": "BOO-1",
        "name": "A Book",
        "price": "12.50",
        "currency": "EUR",
        "category": "books",
    }


def test_product_create_refuses_a_taken_sku_and_publishes_nothing_more():
    ProductFactory(sku="DUP-1")
    category = CategoryFactory()

    with pytest.raises(Conflict) as refused:
        commands.product_create(
            sku="DUP-1", name="Other", price=Decimal("1.00"), category_slug=category.slug
        )

    assert refused.value.code == "sku-taken"
    assert Product.objects.using("catalog").filter(sku="DUP-1").count() == 1
    assert published("catalog", "product.created") == []


def test_product_create_refuses_an_unknown_category_as_invalid_input():
    with pytest.raises(ApplicationError) as refused:
        commands.product_create(sku="X-1", name="X", price=Decimal("1.00"), category_slug="nowhere")

    assert status_for(refused.value) == 400
    assert "category_slug" in refused.value.errors
    assert not Product.objects.using("catalog").exists()


@pytest.mark.parametrize(
    ("price", "field"),
    [
        (Decimal("-1.00"), "price"),
        (Decimal("1.999"), "price"),
        ("not a number", "price"),
        (Decimal("NaN"), "price"),
        (Decimal("10000000000.00"), "price"),
    ],
)
def test_product_create_refuses_a_bad_price(price, field):
    category = CategoryFactory()

    with pytest.raises(ApplicationError) as refused:
        commands.product_create(sku="X-1", name="X", price=price, category_slug=category.slug)

    assert status_for(refused.value) == 400
    assert field in refused.value.errors


def test_product_create_refuses_a_blank_sku_and_a_bad_currency():
    category = CategoryFactory()

    with pytest.raises(ApplicationError) as blank:
        commands.product_create(sku="  ", name="X", price="1", category_slug=category.slug)
    with pytest.raises(ApplicationError) as currency:
        commands.product_create(
            sku="X-1", name="X", price="1", category_slug=category.slug, currency="euro"
        )

    assert "sku" in blank.value.errors
    assert "currency" in currency.value.errors


def test_category_create_refuses_a_taken_or_malformed_slug():
    commands.category_create(slug="books", name="Books")

    with pytest.raises(Conflict):
        commands.category_create(slug="books", name="More books")
    with pytest.raises(ApplicationError) as malformed:
        commands.category_create(slug="not a slug", name="Bad")

    assert status_for(malformed.value) == 400
    assert list(Category.objects.using("catalog").values_list("name", flat=True)) == ["Books"]


def test_demo_seed_creates_four_categories_of_three_products_once():
    first = demo.seed()
    second = demo.seed()

    assert first == "4 categories, 12 products (12 new)"
    assert second == "4 categories, 12 products (0 new)"
    assert Category.objects.using("catalog").count() == 4
    assert Product.objects.using("catalog").count() == 12
    for category in Category.objects.using("catalog"):
        assert category.products.count() == 3
    assert len(published("catalog", "product.created")) == 12
    assert Product.objects.using("catalog").get(sku="APP-TEE-001").price == Decimal("19.90")
