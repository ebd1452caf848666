import factory

from contexts.inventory.models import StockItem


class StockItemFactory(factory.django.DjangoModelFactory):
    """Stock rows; reservations are made through the command so stock is really held."""

    class Meta:
        model = StockItem
        database = "inventory"

    sku = factory.Sequence(lambda n: f"SKU-{n:05d}")
    on_hand = 10
    reserved = 0
