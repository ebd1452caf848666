"""Read side of the users context."""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from cleave.core.errors import NotFound

from .emails import UnacceptableEmail, normalize_email
from .models import Customer


def customer_get(*, customer_id: UUID) -> Customer:
    customer = Customer.objects.filter(pk=customer_id).first()
    if customer is None:
        raise NotFound(f"No customer {customer_id}.")
    return customer


# the seed's page: 10 customers unless asked, never more than 100 at once
DEFAULT_LIMIT = 10
MAX_LIMIT = 100


@dataclass(frozen=True)
class CustomerPage:
    count: int
    limit: int
    offset: int
    results: list[Customer]


def customer_list(
    *,
    email: str | None = None,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    offset: int = 0,
) -> CustomerPage:
    """
    The seed's `getUsersByFilters`: customers by email and status, oldest
    first (then by id, so pages never overlap or skip), `limit` from `offset`.

    `email` matches exactly, or as a prefix when it ends with `*`
    (`ann*`); either way after the normalisation every stored address went
    through (`.emails`: case, NFKC, invisible characters).
    """
    rows = Customer.objects.all()
    if email:
        try:
            email = normalize_email(email)
        except UnacceptableEmail:
            rows = rows.none()  # no stored address holds such characters
        if email.endswith("*"):
            rows = rows.filter(email__startswith=email.rstrip("*"))
        else:
            rows = rows.filter(email=email)
    if status:
        rows = rows.filter(status=status)
    limit = max(1, min(limit, MAX_LIMIT))
    offset = max(0, offset)
    rows = rows.order_by("created_at", "id")
    return CustomerPage(
        count=rows.count(), limit=limit, offset=offset, results=list(rows[offset : offset + limit])
    )
