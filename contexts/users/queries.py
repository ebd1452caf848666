"""Read side of the users context."""

from __future__ import annotations

from uuid import UUID

from cleave.api import NotFound

from .apps import ALIAS
from .models import Customer


def customer_get(*, customer_id: UUID) -> Customer:
    customer = Customer.objects.using(ALIAS).filter(pk=customer_id).first()
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    return customer
