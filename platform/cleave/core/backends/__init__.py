"""
Database backends that count every query for Prometheus: Django's own
backends, through django-prometheus's metrics (`django_db_execute_total`,
`django_db_query_duration_seconds`, `django_db_errors_total` by exception
type, `django_db_new_connections_total`, ... by `alias` and `vendor`) and its
connection counting (`DatabaseWrapperMixin`).

Its cursor wrapper is not used, for two reasons measured here. It builds a
new class for every cursor and looks its labelled series up at every query:
a `SELECT 1` on SQLite took 27 to 50 µs with it, 13 to 22 µs with
`counting_cursor` and 10 to 13 µs bare (a checkout runs about 62 statements).
And its PostgreSQL backend wraps a connection's cursor class in
`get_new_connection`: a pooled connection comes back from the pool with the
class of its last checkout and was wrapped once more at each, so after 200
checkouts 200 statements were counted 10,100 times, each through 108 nested
classes. `counting_cursor` makes one class per cursor class, alias and
vendor, with its series bound once; the PostgreSQL backend wraps Django's own
cursor class at each checkout. (docs/observability.md has the figures.)
"""

from __future__ import annotations

from functools import cache, cached_property
from time import perf_counter

from django_prometheus.db.metrics import (
    errors_total,
    execute_many_total,
    execute_total,
    query_duration_seconds,
)

from cleave.core import locations


class FollowsMoves:
    """
    A backend whose connections follow their context's moves
    (`cleave.core.locations`): one made before the move is dropped at its
    next use, and the old database's refusal of a write becomes `ContextMoved`.
    """

    def ensure_connection(self):
        locations.check(self)
        super().ensure_connection()

    def close_if_unusable_or_obsolete(self):
        # at the start and end of a request, and between periodic jobs: a
        # connection to where the context was is dropped, not checked
        if not locations.close_if_stale(self):
            super().close_if_unusable_or_obsolete()

    @cached_property
    def wrap_database_errors(self):
        return locations.ErrorWrapper(self)


@cache
def counting_cursor(cursor_class: type, alias: str, vendor: str) -> type:
    """`cursor_class`, counting and timing each statement as django-prometheus does."""
    executed = execute_total.labels(alias, vendor)
    executed_in_bulk = execute_many_total.labels(alias, vendor)
    duration = query_duration_seconds.labels(alias, vendor)

    class CountingCursor(cursor_class):
        def execute(self, *args, **kwargs):
            executed.inc()
            started = perf_counter()
            try:
                return super().execute(*args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)

        def executemany(self, query, param_list, *args, **kwargs):
            executed.inc(len(param_list))
            executed_in_bulk.inc(len(param_list))
            started = perf_counter()
            try:
                return super().executemany(query, param_list, *args, **kwargs)
            except Exception as exc:
                errors_total.labels(alias, vendor, type(exc).__name__).inc()
                raise
            finally:
                duration.observe(perf_counter() - started)

    CountingCursor.__name__ = CountingCursor.__qualname__ = f"Counting{cursor_class.__name__}"
    return CountingCursor
