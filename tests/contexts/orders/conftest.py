"""A small shop for the orders tests: one customer, two products with stock."""

from dataclasses import dataclass
from decimal import Decimal

import pytest

from cleave.testing import customer_headers, saga_steps  # noqa: F401 - a fixture for the tests here
from contexts.catalog.models import Category, Product
from contexts.inventory.models import StockItem
from contexts.users.commands import customer_register


@dataclass
class Shop:
    customer: object
    headers: dict
    tee: Product
    mug: Product


def make_product(sku: str, price: str, stock: int, category: Category) -> Product:
    product = Product.objects.create(
        sku=sku, name=f"Product {sku}", description="", price=Decimal(price), category=category
    )
    StockItem.objects.create(sku=sku, on_hand=stock)
    return product


@pytest.fixture
def shop() -> Shop:
    category = Category.objects.create(slug="apparel", name="Apparel")
    customer = customer_register(email="ada@example.com", password="correct horse", name="Ada")
    return Shop(
        customer=customer,
        headers=customer_headers(customer.id, customer.email),
        tee=make_product("TEE-1", "19.90", 10, category),
        mug=make_product("MUG-1", "8.50", 5, category),
    )


def post_item(api, shop, product_id, quantity=1, headers=None):
    """POST /api/orders/cart/items as the shop's customer (or `headers`'); the raw response."""
    return api.post(
        "/api/orders/cart/items",
        {"product_id": str(product_id), "quantity": quantity},
        format="json",
        headers=headers or shop.headers,
    )


def add(api, shop, product, quantity=1):
    response = post_item(api, shop, product.id, quantity)
    assert response.status_code == 201, response.json()
    return response.json()


def checkout(api, shop, payment_method="tok_visa", key=None):
    headers = dict(shop.headers)
    if key:
        headers["Idempotency-Key"] = key
    return api.post(
        "/api/orders/checkout", {"payment_method": payment_method}, format="json", headers=headers
    )
