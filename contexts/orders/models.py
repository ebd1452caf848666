import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from contracts import orders

# How many of one product a cart line holds, however it got there: the API
# documents these bounds for one request (api/views.py), and the commands keep
# every line within them, repeated additions included (commands.cart_quantity).
MIN_QUANTITY = 1
MAX_QUANTITY = 1000


def _currency() -> str:
    return settings.CLEAVE_CURRENCY


class Cart(models.Model):
    """One open cart per customer; emptied when the customer checks out."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField(unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"cart of {self.customer_id}"


class CartItem(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    cart = models.ForeignKey(Cart, on_delete=models.CASCADE, related_name="items")
    product_id = models.UUIDField()
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default=_currency)
    quantity = models.PositiveIntegerField()
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["added_at", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["cart", "product_id"], name="orders_one_line_per_product"
            )
        ]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"

    @property
    def line_total(self):
        return self.unit_price * self.quantity


class Order(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", "pending"
        CONFIRMED = "confirmed", "confirmed"
        CANCELLED = "cancelled", "cancelled"

    CancellationReason = orders.CancellationReason

    # the records of other contexts an order names by id, each with its admin's
    # model: the order's page and its checkout saga's page link to them
    REFERENCES = (
        ("customer_id", "users.customer"),
        ("reservation_id", "inventory.reservation"),
        ("payment_id", "payments.payment"),
    )

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer_id = models.UUIDField()  # indexed with the time: Meta.indexes
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True
    )
    total = models.DecimalField(max_digits=12, decimal_places=2)
    currency = models.CharField(max_length=3, default=_currency)
    payment_method = models.CharField(max_length=100)
    payment_id = models.UUIDField(null=True, blank=True)
    reservation_id = models.UUIDField(null=True, blank=True)
    # NULL, not "": the API shows null until cancelled, and the unique
    # (customer_id, idempotency_key) constraint must admit many keyless orders.
    cancellation_reason = models.CharField(  # noqa: DJ001
        max_length=32, choices=CancellationReason.choices, null=True, blank=True
    )
    idempotency_key = models.CharField(max_length=255, null=True, blank=True)  # noqa: DJ001
    saga_id = models.UUIDField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer_id", "idempotency_key"], name="orders_checkout_idempotency"
            )
        ]
        indexes = [
            # a customer's orders newest first (`queries.orders_for_customer`): a
            # page of a customer of thousands of orders reads just its rows
            models.Index(fields=["customer_id", "created_at", "id"], name="orders_customer_newest"),
        ]

    def __str__(self) -> str:
        return f"order {self.id} ({self.status})"


class OrderLine(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    product_id = models.UUIDField()
    sku = models.CharField(max_length=64)
    name = models.CharField(max_length=200)
    unit_price = models.DecimalField(max_digits=12, decimal_places=2)
    quantity = models.PositiveIntegerField()
    line_total = models.DecimalField(max_digits=12, decimal_places=2)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.sku}"
