import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from cleave.testing import published, unit
from contexts.catalog.models import Product
from tests.contexts.catalog.factories import CategoryFactory, ProductFactory

pytestmark = unit


@pytest.fixture
def operator() -> Client:
    client = Client()
    client.force_login(get_user_model().objects.create_superuser("root", password="x" * 12))
    return client


@pytest.mark.parametrize("model", ["category", "product"])
def test_the_admin_lists_and_filters_catalog_models(operator, model):
    ProductFactory(sku="ADM-1")

    listed = operator.get(f"/admin/catalog/{model}/?q=ADM")
    added = operator.get(f"/admin/catalog/{model}/add/")

    assert (listed.status_code, added.status_code) == (200, 200)


def test_a_product_added_in_the_admin_publishes_product_created(operator):
    CategoryFactory(slug="books", name="Books")

    response = operator.post(
        "/admin/catalog/product/add/",
        {
            "sku": "BOO-ADM",
            "name": "Admin Book",
            "description": "",
            "category": "books",
            "price": "9.90",
            "currency": "EUR",
            "active": "on",
        },
    )

    assert response.status_code == 302, response.content
    product = Product.objects.using("catalog").get(sku="BOO-ADM")
    [event] = published("catalog", "product.created")
    assert event.data["product_id"] == str(product.id)
    assert event.data["price"] == "9.90"
