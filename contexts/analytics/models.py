"""
The analytics read model, built only from other contexts' events.

It can be emptied (`commands.analytics_reset`) and rebuilt by replaying the
event log.
"""

from django.db import models
from django.utils import timezone


class Counter(models.Model):
    """A named running total. Counts are whole numbers; `revenue` is money."""

    USERS_REGISTERED = "users_registered"
    USERS_VERIFIED = "users_verified"
    USERS_DELETED = "users_deleted"
    ORDERS_CONFIRMED = "orders_confirmed"
    ORDERS_CANCELLED = "orders_cancelled"
    REVENUE = "revenue"

    name = models.CharField(max_length=64, primary_key=True)
    value = models.DecimalField(max_digits=18, decimal_places=2, default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} = {self.value}"


class ProductSales(models.Model):
    """Units sold and revenue earned per product, from confirmed orders."""

    product_id = models.UUIDField(primary_key=True)
    sku = models.CharField(max_length=64, db_index=True)
    quantity = models.BigIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-quantity", "-revenue"]
        verbose_name_plural = "product sales"

    def __str__(self) -> str:
        return f"{self.sku}: {self.quantity}"
