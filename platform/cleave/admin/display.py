"""
How the admin writes times and durations: a time to the second with its zone
(`2025-03-01 14:05:09 UTC`, in the current time zone: `timestamp`, shared with
`manage.py status` through `cleave.runtime.state`); a duration in whole
milliseconds. Django's own date format for English (`N j, Y, P`: "March 1,
2025, 2:05 p.m.") drops the seconds and the zone, which an operator lining up
a saga's steps with a log needs.

`readable_datetimes` is how every admin page gets it (`cleave.admin.site`
installs it): the admin shows a model field's value through
`display_for_field`, in its lists (`admin_list`) and on its detail pages
(`helpers`), so wrapping that one function covers every list column,
read-only field and inline of every ModelAdmin, Django's own included,
without each ModelAdmin opting in. The `DATETIME_FORMAT` setting would not do:
the English locale's format takes precedence over it.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db import models

from cleave.runtime.state import age, timestamp

__all__ = ["EMPTY", "age", "milliseconds", "readable_datetimes", "timestamp"]

EMPTY = "-"


def milliseconds(value: float | None, *, empty: str = EMPTY) -> str:
    """A duration in milliseconds, rounded to one: `2 ms`, `1,204 ms`, `< 1 ms`."""
    if value is None:
        return empty
    if 0 < value < 0.5:
        return "< 1 ms"
    return f"{int(value + 0.5):,} ms"  # half up: 2.5 ms is 3 ms, not (banker's) 2


DisplayForField = Callable[..., str]


def readable_datetimes(display_for_field: DisplayForField) -> DisplayForField:
    """Django's `display_for_field`, writing a date-time field's value as `timestamp`."""
    if getattr(display_for_field, "readable_datetimes", False):
        return display_for_field  # installed once, whoever imports twice

    def display(value, field, empty_value_display, *args, **kwargs):
        if (
            isinstance(field, models.DateTimeField)
            and not getattr(field, "flatchoices", None)
            and value is not None
        ):
            return timestamp(value)
        return display_for_field(value, field, empty_value_display, *args, **kwargs)

    display.__doc__ = display_for_field.__doc__
    display.readable_datetimes = True  # type: ignore[attr-defined]
    return display
