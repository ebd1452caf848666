"""
Change lists that stay quick on tables of millions of rows.

Django's admin counts the rows a list's filters select, for its paginator,
and for "N total" beside a search counts the whole table again. A COUNT(*)
reads an index from end to end: on a million orders, or the outbox events of
one context, that is most of a second per count and per database, on every
page. Every list of the project (`cleave.admin.site` sets both on
`ModelAdmin`) counts only up to `CappedPaginator.cap` rows (`SELECT COUNT(*)
FROM (... LIMIT cap + 1)`): below it the count is exact; past it the list
says "more than 10,000" and pages through the first 10,000 (filters, search
and the date drill-down narrow it to the others). The table is never
counted again (`show_full_result_count = False`: Django then offers "Show
all" instead of "N total").
"""

from __future__ import annotations

from django.core.paginator import Paginator
from django.utils.functional import cached_property


class AtLeast(int):
    """A count that stopped at a cap: a number to the paginator, "more than N" to a reader."""

    def __str__(self) -> str:
        return f"more than {int(self):,}"


class CappedPaginator(Paginator):
    """Django's paginator, counting at most `cap` rows (see the module's docstring)."""

    cap = 10_000

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        # the rows of several aliases (cleave.admin.aliases.ContextRows) count
        # each alias up to the cap; a queryset counts a slice, as a subquery
        count_up_to = getattr(rows, "count_up_to", None)
        if count_up_to is not None:
            counted = count_up_to(self.cap + 1)
        elif hasattr(rows, "query"):
            counted = rows[: self.cap + 1].count()
        else:
            counted = len(rows)
        return AtLeast(self.cap) if counted > self.cap else counted
