import uuid

from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


def default_currency() -> str:
    """The shop currency; a callable so changing the setting needs no migration."""
    return settings.CLEAVE_CURRENCY


class Category(models.Model):
    """A shelf of the shop, addressed by its slug."""

    slug = models.SlugField(max_length=64, primary_key=True)
    name = models.CharField(max_length=120)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    """A sellable article. Stock levels live in the inventory context, keyed by `sku`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    sku = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=12, decimal_places=2, validators=[MinValueValidator(0)])
    currency = models.CharField(max_length=3, default=default_currency)
    category = models.ForeignKey(Category, on_delete=models.PROTECT, related_name="products")
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "sku"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(price__gte=0), name="catalog_product_price_non_negative"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sku} {self.name}"


def _new_series() -> str:
    return uuid.uuid4().hex


class Revision(models.Model):
    """
    The catalogue's revision: one row, whose number goes up with every write to
    a category or a product, in the writing transaction. Public reads name it
    in their `ETag` and cache their answers under it (`queries.revision`), so
    every process of every group sees a price change at its next request.
    """

    ONE = 1

    id = models.PositiveSmallIntegerField(primary_key=True, default=ONE)
    # a row made again (a database emptied, or built anew) starts a new series:
    # numbers counted from 0 again never meet an answer cached under the old
    series = models.CharField(max_length=32, default=_new_series)
    number = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"catalogue revision {self.series}.{self.number}"


def _bump(sender, instance, using, **kwargs) -> None:
    # inside the write's transaction: the new revision commits with it; admin
    # deletes of many rows send the signal per row, each bumping once
    revisions = Revision.objects.using(using)
    if not revisions.filter(pk=Revision.ONE).update(number=models.F("number") + 1):
        revisions.get_or_create(pk=Revision.ONE, defaults={"number": 1})


for _model in (Category, Product):
    models.signals.post_save.connect(_bump, sender=_model, dispatch_uid=f"revision-{_model}")
    models.signals.post_delete.connect(_bump, sender=_model, dispatch_uid=f"revision-del-{_model}")
