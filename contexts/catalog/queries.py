"""Read side of the catalog context."""

from __future__ import annotations

from uuid import UUID

from django.db import connections
from django.db.models import Q, QuerySet

from cleave.core.errors import NotFound

from .apps import ALIAS
from .models import Category, Product, Revision


def product_list(*, search: str = "", category: str = "") -> QuerySet[Product]:
    """Active products, optionally matching `search` in name, description or SKU."""
    products = Product.objects.filter(active=True)
    if category:
        products = products.filter(category_id=category)
    search = search.strip()
    if search:
        products = products.filter(
            Q(name__icontains=search) | Q(description__icontains=search) | Q(sku__icontains=search)
        )
    return products.order_by("name", "sku")


def product_get(*, product_id: UUID) -> Product:
    """An active product; a withdrawn one is as unknown to shoppers as a missing one."""
    product = Product.objects.filter(pk=product_id, active=True).first()
    if product is None:
        raise NotFound(f"No product {product_id}.")
    return product


def category_list() -> QuerySet[Category]:
    return Category.objects.order_by("name", "slug")


def revision() -> str:
    """
    The catalogue's revision (`models.Revision`): changes with every write to it.

    Every public read asks it first, so it is one statement on a cursor: the
    ORM's query building cost three times the query itself (cProfile, SQLite).
    """
    table = connections[ALIAS].ops.quote_name(Revision._meta.db_table)
    with connections[ALIAS].cursor() as cursor:
        cursor.execute(f"SELECT series, number FROM {table} WHERE id = %s", [Revision.ONE])  # noqa: S608
        current = cursor.fetchone()
    return "0" if current is None else f"{current[0]}.{current[1]}"
