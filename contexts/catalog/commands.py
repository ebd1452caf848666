"""Write side of the catalog context."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import IntegrityError, transaction

from cleave.core.errors import Conflict, invalid
from cleave.messaging.publish import publish
from contracts import catalog

from .apps import ALIAS
from .models import Category, Product

_CURRENCY = re.compile(r"^[A-Z]{3}$")
_MAX_PRICE = Decimal("9999999999.99")  # what DecimalField(max_digits=12, decimal_places=2) holds


def _required_text(field: str, value: str, *, max_length: int) -> str:
    value = (value or "").strip()
    if not value:
        raise invalid(field, "This field may not be blank.")
    if len(value) > max_length:
        raise invalid(field, f"Ensure this field has no more than {max_length} characters.")
    return value


def _money(value: Decimal | str | int) -> Decimal:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise invalid("price", "A valid number is required.") from exc
    if not amount.is_finite():
        raise invalid("price", "A valid number is required.")
    if amount < 0:
        raise invalid("price", "The price may not be negative.")
    if amount > _MAX_PRICE:
        raise invalid("price", f"The price may not exceed {_MAX_PRICE}.")
    if amount != amount.quantize(Decimal("0.01")):
        raise invalid("price", "Ensure that there are no more than 2 decimal places.")
    return amount.quantize(Decimal("0.01"))


def category_create(*, slug: str, name: str) -> Category:
    """Create a category; its slug is its identity and may not be taken."""
    slug = _required_text("slug", slug, max_length=64)
    try:
        validate_slug(slug)
    except ValidationError as exc:
        raise invalid("slug", exc.messages[0]) from exc
    name = _required_text("name", name, max_length=120)
    try:
        with transaction.atomic(using=ALIAS):
            if Category.objects.filter(slug=slug).exists():
                raise Conflict(f"A category {slug} already exists.", code="category-exists")
            return Category.objects.create(slug=slug, name=name)
    except IntegrityError as exc:  # a concurrent creation won the race
        raise Conflict(f"A category {slug} already exists.", code="category-exists") from exc


def product_create(
    *,
    sku: str,
    name: str,
    description: str = "",
    price: Decimal | str | int,
    category_slug: str,
    currency: str | None = None,
    active: bool = True,
) -> Product:
    """Add a product to the catalog and publish `product.created`."""
    sku = _required_text("sku", sku, max_length=64)
    name = _required_text("name", name, max_length=200)
    amount = _money(price)
    currency = (currency or settings.CLEAVE_CURRENCY).strip().upper()
    if not _CURRENCY.match(currency):
        raise invalid("currency", "Use a three-letter ISO 4217 code such as EUR.")
    try:
        with transaction.atomic(using=ALIAS):
            category = Category.objects.filter(slug=category_slug).first()
            if category is None:
                raise invalid("category_slug", f"No category {category_slug}.")
            if Product.objects.filter(sku=sku).exists():
                raise Conflict(f"A product with SKU {sku} already exists.", code="sku-taken")
            product = Product.objects.create(
                sku=sku,
                name=name,
                description=(description or "").strip(),
                price=amount,
                currency=currency,
                category=category,
                active=active,
            )
            publish(
                catalog.PRODUCT_CREATED,
                {
                    "product_id": product.id,
                    "sku": product.sku,
                    "name": product.name,
                    "price": f"{product.price:.2f}",
                    "currency": product.currency,
                    "category": category.slug,
                },
            )
    except IntegrityError as exc:  # a concurrent creation took the SKU
        raise Conflict(f"A product with SKU {sku} already exists.", code="sku-taken") from exc
    return product
