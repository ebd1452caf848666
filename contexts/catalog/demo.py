"""Demo catalog: four categories of three products each (idempotent)."""

from __future__ import annotations

import contextlib
from decimal import Decimal

from cleave.core.errors import Conflict

from . import commands

CATEGORIES = [
    ("apparel", "Apparel"),
    ("books", "Books"),
    ("kitchen", "Kitchen"),
    ("outdoor", "Outdoor"),
]

PRODUCTS = [
    (
        "apparel",
        "APP-TEE-001",
        "Organic Cotton T-Shirt",
        "A heavyweight crew-neck tee in GOTS-certified organic cotton. Pre-shrunk, "
        "with a relaxed fit that keeps its shape wash after wash.",
        Decimal("19.90"),
    ),
    (
        "apparel",
        "APP-HOD-002",
        "Merino Zip Hoodie",
        "Fine merino wool hoodie with a full-length zip. Warm, breathable and odour "
        "resistant, for city days and cool evenings.",
        Decimal("89.00"),
    ),
    (
        "apparel",
        "APP-SCK-003",
        "Hiking Socks, 3-Pack",
        "Cushioned wool-blend socks with a reinforced heel and toe and a seamless "
        "closure that will not rub on long walks.",
        Decimal("24.50"),
    ),
    (
        "books",
        "BOO-DDD-001",
        "Domain-Driven Design Distilled",
        "A concise introduction to bounded contexts, aggregates and domain events, "
        "with practical advice on strategic design.",
        Decimal("32.99"),
    ),
    (
        "books",
        "BOO-PYT-002",
        "Architecture Patterns with Python",
        "Test-driven development, domain modelling and event-driven microservices, "
        "worked through one Python application.",
        Decimal("44.90"),
    ),
    (
        "books",
        "BOO-COK-003",
        "The Weeknight Cookbook",
        "One hundred recipes that take thirty minutes or less, from one-pan dinners "
        "to quick breads, with a shopping list for each week.",
        Decimal("27.00"),
    ),
    (
        "kitchen",
        "KIT-KNF-001",
        "Chef's Knife 20 cm",
        "Forged stainless steel chef's knife with a full tang and a balanced olive "
        "wood handle. Sharpened by hand to 15 degrees.",
        Decimal("74.90"),
    ),
    (
        "kitchen",
        "KIT-PAN-002",
        "Cast Iron Skillet 26 cm",
        "Pre-seasoned cast iron pan that goes from hob to oven to table. Holds heat "
        "evenly and lasts a lifetime.",
        Decimal("39.95"),
    ),
    (
        "kitchen",
        "KIT-GRN-003",
        "Burr Coffee Grinder",
        "Conical steel burrs with 30 grind settings, from espresso to cold brew, and "
        "a quiet motor for early mornings.",
        Decimal("129.00"),
    ),
    (
        "outdoor",
        "OUT-TNT-001",
        "Two-Person Trekking Tent",
        "A freestanding three-season tent at 1.9 kg with two doors, two vestibules "
        "and colour-coded poles for a fast pitch.",
        Decimal("249.00"),
    ),
    (
        "outdoor",
        "OUT-BTL-002",
        "Insulated Water Bottle 750 ml",
        "Double-walled stainless steel bottle that keeps drinks cold for 24 hours "
        "and hot for 12. Leak-proof lid.",
        Decimal("29.90"),
    ),
    (
        "outdoor",
        "OUT-LMP-003",
        "Rechargeable Head Torch",
        "400-lumen head torch with a red night mode, USB-C charging and a beam that "
        "reaches 90 metres.",
        Decimal("34.50"),
    ),
]


def seed() -> str:
    """Create the demo categories and products that do not exist yet."""
    for slug, name in CATEGORIES:
        with contextlib.suppress(Conflict):  # already seeded
            commands.category_create(slug=slug, name=name)
    created = 0
    for category, sku, name, description, price in PRODUCTS:
        try:
            commands.product_create(
                sku=sku,
                name=name,
                description=description,
                price=price,
                category_slug=category,
            )
        except Conflict:
            continue  # already seeded: publish nothing again
        created += 1
    return f"{len(CATEGORIES)} categories, {len(PRODUCTS)} products ({created} new)"
