"""
Admin lists of the platform's tables across every context alias.

The outbox, inbox, deliveries, dead letters and sagas exist once per context
alias, and an operator wants them all on one page. Django's `ChangeList`
filters, searches and orders one queryset, so `AliasChangeList` lets it build
that query as usual (its filters, search and ordering unchanged) and runs it
on every alias the list shows, every context or the one the *context* filter
chose: `ContextRows` merges the aliases' rows in the list's order (newest
first) and pages the merge; page n reads n pages' worth from each alias, which
an operator's list can afford. Rows of one alias come in the order its
database gives; the merge compares the ordering fields in Python (NULL
first), which only a sort on a nullable column could tell apart on PostgreSQL.

Inbox records, deliveries and steps number their rows per alias, so an id
alone names a row in several: a row's link and its action checkbox carry its
alias (`…/42/change/?context=orders`, `orders:42`). A detail page opened
without `?context=` finds a row in whichever alias holds it (ids of sagas,
events and dead letters are UUIDs). An alias that cannot be read is named
above the list as unavailable; the others still show.
"""

from __future__ import annotations

import functools
import logging
from typing import Any
from urllib.parse import parse_qs, urlencode

from django.contrib import admin, messages
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.db import Error as DatabaseFailure
from django.db.models import F, Model, QuerySet
from django.db.models.expressions import OrderBy
from django.http import HttpRequest

from cleave.admin.actions import ObjectActionsMixin
from cleave.admin.readonly import ReadOnlyAdmin
from cleave.core.registry import all_contexts

logger = logging.getLogger(__name__)

ALIAS_PARAM = "context"


def aliases() -> list[tuple[str, str]]:
    """(alias, context label) of every context installed in this process."""
    return [(cfg.database, cfg.label) for cfg in all_contexts()]


def label_of(alias: str) -> str:
    return dict(aliases()).get(alias, alias)


def alias_of(label: str | None) -> str | None:
    """The alias of the context labelled `label` (an event's `source`), None if not here."""
    return next((alias for alias, known in aliases() if known == label), None)


def chosen_alias(request: HttpRequest) -> str | None:
    """The alias a request names (`?context=`, also through a list's preserved filters)."""
    if hasattr(request, "_cleave_alias"):
        return request._cleave_alias
    wanted = request.GET.get(ALIAS_PARAM)
    if not wanted and "_changelist_filters" in request.GET:
        wanted = parse_qs(request.GET["_changelist_filters"]).get(ALIAS_PARAM, [None])[0]
    return wanted if wanted in dict(aliases()) else None


def unavailable(alias: str, exc: BaseException) -> str:
    """What to tell an operator of an alias that could not be read (and log it)."""
    error = f"{type(exc).__name__}: {exc}"[:300]
    logger.warning("The admin could not read %s: %s", alias, error)
    return error


def per_alias(rows: Any) -> list[tuple[str, QuerySet]]:
    """An action's rows as (alias, queryset) pairs, whether one alias's or several."""
    if isinstance(rows, ContextRows):
        return rows.by_alias()
    return [(rows.db, rows)]


class ContextRows:
    """
    One query run on several aliases, read as one list in its order: what a
    paginator, the admin's result list and its actions need of a queryset
    (`count`, slices, iteration, `filter`, `exclude`). An alias that fails is
    recorded in `unavailable` (shared with every copy) and reads as empty.
    """

    ordered = True

    def __init__(
        self, model: type[Model], parts: dict[str, QuerySet], failed: dict[str, str] | None = None
    ) -> None:
        self.model = model
        self.parts = parts
        self.unavailable = {} if failed is None else failed
        self._count: int | None = None
        self._all: list[Model] | None = None

    @classmethod
    def of(
        cls, queryset: QuerySet, names: list[str], failed: dict[str, str] | None = None
    ) -> ContextRows:
        return cls(queryset.model, {alias: queryset.using(alias) for alias in names}, failed)

    def by_alias(self) -> list[tuple[str, QuerySet]]:
        return [
            (alias, rows) for alias, rows in self.parts.items() if alias not in self.unavailable
        ]

    def _read(self, alias: str, read, default):
        try:
            return read(self.parts[alias])
        except DatabaseFailure as exc:
            self.unavailable[alias] = unavailable(alias, exc)
            return default

    def count(self) -> int:
        if self._count is None:
            self._count = sum(self._read(alias, QuerySet.count, 0) for alias, _ in self.by_alias())
        return self._count

    def count_up_to(self, limit: int) -> int:
        """The rows, counted in each alias only up to `limit` (see `cleave.admin.paging`)."""
        return sum(
            self._read(alias, lambda qs: qs[:limit].count(), 0) for alias, _ in self.by_alias()
        )

    def __len__(self) -> int:
        return self.count()

    def __iter__(self):
        if self._all is None:
            self._all = self._merged(None)
        return iter(self._all)

    def __getitem__(self, index):
        if isinstance(index, slice):
            if index.step not in (None, 1) or (index.start or 0) < 0:
                raise ValueError("ContextRows takes forward slices only.")
            if self._all is not None:
                return self._all[index]
            return self._merged(index.stop)[index.start or 0 : index.stop]
        return self[index : index + 1][0]

    def _clone(self) -> ContextRows:
        return ContextRows(self.model, dict(self.parts), self.unavailable)

    def _each(self, change) -> ContextRows:
        return ContextRows(
            self.model,
            {alias: change(rows) for alias, rows in self.parts.items()},
            self.unavailable,
        )

    def filter(self, *args, **kwargs) -> ContextRows:
        if not args and set(kwargs) == {"pk__in"}:
            return self.selected(kwargs["pk__in"])
        return self._each(lambda rows: rows.filter(*args, **kwargs))

    def exclude(self, *args, **kwargs) -> ContextRows:
        return self._each(lambda rows: rows.exclude(*args, **kwargs))

    def selected(self, values) -> ContextRows:
        """
        The rows an action's checkboxes chose: `alias:pk` names a row of one
        alias; a bare pk (a UUID, unique everywhere) is looked for in every one.
        """
        named: dict[str, list[str]] = {}
        bare: list[str] = []
        for value in values:
            alias, sep, pk = str(value).partition(":")
            if sep and alias in self.parts:
                named.setdefault(alias, []).append(pk)
            else:
                bare.append(str(value))
        return ContextRows(
            self.model,
            {
                alias: rows.filter(pk__in=[*named.get(alias, []), *bare])
                for alias, rows in self.parts.items()
                if alias in named or bare
            },
            self.unavailable,
        )

    # --- merging ------------------------------------------------------------------------------

    def _merged(self, stop: int | None) -> list[Model]:
        rows: list[Model] = []
        for alias, _part in self.by_alias():
            rows.extend(self._read(alias, lambda qs: list(qs if stop is None else qs[:stop]), []))
        rows.sort(key=functools.cmp_to_key(self._compare))
        return rows if stop is None else rows[:stop]

    @functools.cached_property
    def _order(self) -> list[tuple[str, bool]]:
        """(attribute, descending) for each term of the query's ordering that names a field."""
        first = next(iter(self.parts.values()), None)
        terms = list(first.query.order_by) if first is not None else []
        terms = terms or list(self.model._meta.ordering)
        order = []
        for term in terms:
            if isinstance(term, str):
                name, descending = term.removeprefix("-"), term.startswith("-")
            elif isinstance(term, OrderBy) and isinstance(term.expression, F):
                name, descending = term.expression.name, term.descending
            else:
                continue
            if name == "pk":
                name = self.model._meta.pk.name
            try:
                attname = self.model._meta.get_field(name).attname
            except FieldDoesNotExist:  # a related or computed term: the databases' order stands
                continue
            order.append((attname, descending))
        return order

    def _compare(self, left: Model, right: Model) -> int:
        for name, descending in self._order:
            a, b = getattr(left, name, None), getattr(right, name, None)
            if a == b:
                continue
            if a is None or b is None:
                result = -1 if a is None else 1
            else:
                try:
                    result = -1 if a < b else 1
                except TypeError:
                    result = -1 if str(a) < str(b) else 1
            return -result if descending else result
        return 0


class AliasChangeList(ChangeList):
    """Django's change list, run on every alias the list shows (see the module's docstring)."""

    def __init__(self, request, *args, **kwargs) -> None:
        wanted = request.GET.get(ALIAS_PARAM)
        known = [alias for alias, _label in aliases()]
        if wanted and wanted not in known:
            raise IncorrectLookupParameters(f"No context {wanted!r} here.")
        self.aliases = [wanted] if wanted else known
        self.unavailable: dict[str, str] = {}
        super().__init__(request, *args, **kwargs)

    def get_queryset(self, request, exclude_parameters=None):
        query = super().get_queryset(request, exclude_parameters)
        return ContextRows.of(query, self.aliases, self.unavailable)

    def get_results(self, request) -> None:
        root = self.root_queryset
        # the total without filters, in every alias shown
        self.root_queryset = ContextRows.of(root, self.aliases, self.unavailable)
        try:
            super().get_results(request)
        finally:
            self.root_queryset = root
        # read the page's rows now: an alias found down is named before the page renders
        self.result_list = list(self.result_list)

    def url_for_result(self, result) -> str:
        return f"{super().url_for_result(result)}?{urlencode({ALIAS_PARAM: result._state.db})}"

    @property
    def unavailable_contexts(self) -> list[tuple[str, str]]:
        return [(label_of(alias), error) for alias, error in self.unavailable.items()]


class ContextFilter(admin.SimpleListFilter):
    """Every context of this process; none chosen, the list shows them all."""

    title = "context"
    parameter_name = ALIAS_PARAM

    def lookups(self, request, model_admin):
        return aliases()

    def queryset(self, request, queryset):
        return queryset  # the change list runs the query on the chosen alias


class ValuesAcrossContexts(admin.AllValuesFieldListFilter):
    """Django's filter by a field's values, offering the values of every alias the list shows."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        chosen = request.GET.get(ALIAS_PARAM)
        values: set[Any] = set()
        for alias, _label in aliases():
            if chosen and alias != chosen:
                continue
            try:
                values.update(
                    model._default_manager.using(alias)
                    .order_by()
                    .values_list(field.name, flat=True)
                    .distinct()
                )
            except DatabaseFailure as exc:
                unavailable(alias, exc)
        self.lookup_choices = sorted(values, key=lambda value: (value is None, str(value)))


class PerAliasAdmin(ObjectActionsMixin, ReadOnlyAdmin):
    """A read-only ModelAdmin for a platform table that lives in every context alias."""

    change_list_template = "admin/cleave/change_list_across_contexts.html"
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return AliasChangeList

    def get_queryset(self, request):
        alias = chosen_alias(request) or aliases()[0][0]
        return super().get_queryset(request).using(alias)

    def get_object(self, request, object_id, from_field=None):
        named = chosen_alias(request)
        for alias in [named] if named else [alias for alias, _label in aliases()]:
            request._cleave_alias = alias
            try:
                found = super().get_object(request, object_id, from_field)
            except DatabaseFailure as exc:
                messages.error(
                    request,
                    f"The {label_of(alias)} database is unavailable: {unavailable(alias, exc)}",
                )
                continue
            if found is not None:
                return found
        if hasattr(request, "_cleave_alias"):
            del request._cleave_alias
        return None

    @admin.display(description="context")
    def in_context(self, obj) -> str:
        """The context whose alias holds the row."""
        return label_of(obj._state.db)

    def selection_value(self, obj) -> str:
        return f"{obj._state.db}:{obj.pk}"

    def object_query(self, obj) -> str:
        return f"?{urlencode({ALIAS_PARAM: obj._state.db})}"

    def object_action_rows(self, request, obj) -> ContextRows:
        rows = self.model._default_manager.filter(pk=obj.pk)
        return ContextRows.of(rows, [obj._state.db])

    def render_change_form(self, request, context, *args, obj=None, **kwargs):
        if obj is not None:
            context["subtitle"] = f"{obj} — in {label_of(obj._state.db)}"
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)
