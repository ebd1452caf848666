"""
Links between records in the admin, across contexts.

Contexts refer to each other's records by id only, and so do their admin
pages: a link is built from the id a row holds, never by reading the row it
names (a list of fifty orders links each to its customer without one query to
the users database). `cleave.runtime.state.admin_url` makes the address: by
name when the model's admin is installed in this process, else by its path
under `/admin/`, which a split's gateway sends to the admin console, where
every context is installed.

A platform row (a saga, an outbox event, a delivery) lives in one context
alias and its page is found fastest with that alias in the link
(`?context=`; without it, the page looks in every alias, its id being a
UUID): `context` is the alias, or a function of the row that gives
it (`own_alias`: a platform row written in the same transaction as the row
holding its id lives in that row's alias; `alias_of`: the alias of a context,
named by its label, as an event's `source` names it).

`linked(field, model)` is a ModelAdmin attribute that shows `field` as a link
to the record of `model` it names, as a list column or a read-only field of
the record's page; `link` and `list_link` write one link, for the columns
and fields that say more.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import admin
from django.db.models import Model
from django.utils.html import format_html

from cleave.admin.aliases import alias_of
from cleave.admin.display import EMPTY
from cleave.runtime.state import admin_url

__all__ = ["alias_of", "link", "linked", "list_link", "own_alias"]

AliasOf = Callable[[Model], str | None]


def link(model: str, pk: Any, text: Any = None, *, context: str | None = None) -> str:
    """
    `<a href="…">text</a>` to the page of `model`'s record `pk` (`"orders.order"`),
    the id itself unless `text` is given; EMPTY when there is no id.
    """
    if pk is None or pk == "":
        return EMPTY
    return format_html(
        '<a href="{}">{}</a>', admin_url(model, pk, context=context), pk if text is None else text
    )


def list_link(model: str, text: Any, *, context: str | None = None, **filters: Any) -> str:
    """`<a href="…">text</a>` to the list of `model`'s records that match `filters`."""
    return format_html('<a href="{}">{}</a>', admin_url(model, context=context, **filters), text)


def own_alias(obj: Model) -> str | None:
    """The alias that holds `obj`."""
    return obj._state.db


def linked(
    field: str,
    model: str,
    *,
    description: str | None = None,
    context: str | AliasOf | None = None,
) -> Callable[[Any, Model], str]:
    """
    A ModelAdmin attribute showing the id in `field` as a link to that record
    of `model`, under `description` (the field's name without `_id`); ordered
    by the field in a list. Name it in `list_display` or `readonly_fields`::

        customer = linked("customer_id", "users.customer")
        saga = linked("saga_id", "cleave.sagainstance", context=own_alias)
    """

    def show(model_admin: Any, obj: Model) -> str:
        alias = context(obj) if callable(context) else context
        return link(model, getattr(obj, field), context=alias)

    show.__name__ = field.removesuffix("_id") or field
    show.__doc__ = f"The {field} as a link to its {model}."
    label = description or field.removesuffix("_id").replace("_", " ")
    return admin.display(description=label, ordering=field)(show)
