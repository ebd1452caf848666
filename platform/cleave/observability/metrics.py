"""
Prometheus metrics: their names in one place, the HTTP middleware that times
requests, and one view over every process of a server. The `/metrics`
endpoint, who may scrape it and the figures read at scrape time are
`cleave.probes`.

Names follow the seed where it has them (`http_request_duration_seconds`,
`http_requests_total`, `service_call_duration_seconds`, all with a `service`
label), the platform's own start with `cleave_`. Labels are bounded: a route is
the URL pattern, never the raw path; event types, handlers, saga types, steps
and contexts come from the code, never from a request.

**One view of all processes.** Every process writes its samples to files in
`PROMETHEUS_MULTIPROC_DIR` (prometheus_client's multiprocess mode), set by
config/settings.py before the client library is imported, per service
(`CLEAVE_METRICS_DIR`, default `<data dir>/metrics/<service>`): the gunicorn
workers of a server, and the Celery worker and relay of the same group, all
land in one scrape of any of its web processes. Gauges of processes that
stopped are dropped (gunicorn's `child_exit` hook, and at start for pids no
longer alive); counters keep what dead processes counted.

**Who may scrape.** `/metrics` answers requests from the loopback and private
networks (`CLEAVE_METRICS_ALLOW`, CIDRs), or carrying
`Authorization: Bearer <CLEAVE_METRICS_TOKEN>` when that is set; anyone else
gets a 404 problem. The gateway never routes `/metrics`.

Database-backed figures (outbox backlog and lag, sagas running, open dead
letters) are read at scrape time by `cleave.probes.StateCollector` from this process's
aliases, not counted in the hot path.

**django-prometheus** counts what it does well, beside these: every query,
its time and its errors, and new connections, per database alias and vendor
(its database backends, `cleave.core.databases.with_query_metrics`), and the
local-memory cache's lookups. Its metrics are named below with the rest; its
HTTP middlewares are not used (the seed's names and the `service` label are
counted here, in one middleware), nor its migration gauges (see
docs/observability.md).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django_prometheus.cache.metrics import django_cache_get_total as CACHE_GETS
from django_prometheus.cache.metrics import django_cache_hits_total as CACHE_HITS
from django_prometheus.cache.metrics import django_cache_misses_total as CACHE_MISSES
from django_prometheus.db.metrics import connection_errors_total as DB_CONNECTION_ERRORS
from django_prometheus.db.metrics import connections_total as DB_CONNECTIONS
from django_prometheus.db.metrics import errors_total as DB_ERRORS
from django_prometheus.db.metrics import execute_many_total as DB_BULK_STATEMENTS
from django_prometheus.db.metrics import execute_total as DB_STATEMENTS
from django_prometheus.db.metrics import query_duration_seconds as DB_QUERY_DURATION
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

from cleave.core.proxies import client_address

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("cleave.access")
# the WSGI environ key the client's address is left under, for the server's access log
CLIENT_ADDRESS_ENVIRON = "cleave.client_address"

# The seed's buckets, and finer ones below 0.1 s: this service answers in milliseconds.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.3, 0.5, 0.7, 1, 3, 5, 7, 10)

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "HTTP requests served, by method, route (the URL pattern), status code and service.",
    ["method", "route", "status_code", "service"],
    buckets=HTTP_BUCKETS,
)
HTTP_REQUESTS = Counter(
    "http_requests",
    "HTTP requests served, by method, route (the URL pattern), status code and service.",
    ["method", "route", "status_code", "service"],
)
SERVICE_CALL_DURATION = Histogram(
    "service_call_duration_seconds",
    "Calls to another context's API through the service client, retries included, by "
    "target, method, final status ('unavailable': no answer; 'circuit_open': no attempt) "
    "and calling context (service).",
    ["target_service", "method", "status", "service"],
    buckets=HTTP_BUCKETS,
)
CIRCUIT_STATE = Gauge(
    "circuit_breaker_state",
    "State of the circuit breaker of calls from a context (service) to another "
    "(target_service): 0 closed, 1 open, 2 half-open; the worst of the live processes.",
    ["service", "target_service"],
    multiprocess_mode="livemax",
)
CIRCUIT_TRANSITIONS = Counter(
    "circuit_breaker_transitions",
    "Circuit breaker state changes, by calling context, target and the state entered.",
    ["service", "target_service", "state"],
)
SAGAS_STARTED = Counter("cleave_saga_started", "Sagas started, by saga type.", ["saga_type"])
SAGAS_FINISHED = Counter(
    "cleave_saga_finished",
    "Sagas that ended, by type, final state (completed, compensated, failed) and reason.",
    ["saga_type", "state", "reason"],
)
SAGA_STEP_DURATION = Histogram(
    "cleave_saga_step_duration_seconds",
    "One call of a saga step (action, query or compensation), by type, step, kind and outcome.",
    ["saga_type", "step", "kind", "status"],
    buckets=HTTP_BUCKETS,
)
SAGA_OVERDUE_COMPENSATIONS = Counter(
    "cleave_saga_overdue_compensations",
    "Compensation attempts that failed for a technical reason after their saga's "
    "deadline (an operator should look), by saga type and step.",
    ["saga_type", "step"],
)
EVENTS_PUBLISHED = Counter(
    "cleave_events_published",
    "Events committed to an outbox, by type and publishing context.",
    ["type", "context"],
)
EVENTS_DELIVERED = Counter(
    "cleave_events_delivered",
    "Handler attempts on events, by type, subscribing context and outcome (applied, "
    "duplicate: already in the inbox, retry, dead: dead-lettered, skipped).",
    ["type", "context", "outcome"],
)
EVENT_HANDLER_DURATION = Histogram(
    "cleave_event_handler_duration_seconds",
    "Time of one handler attempt, by subscribing context and handler.",
    ["context", "handler"],
    buckets=HTTP_BUCKETS,
)
RESERVATION_EXPIRIES = Counter(
    "cleave_reservation_expiries",
    "Inventory reservations released because they were held past their time.",
)
# django-prometheus's, counted by its database and cache backends:
# django_db_execute_total, django_db_execute_many_total, django_db_errors_total,
# django_db_query_duration_seconds, django_db_new_connections_total and
# django_db_new_connection_errors_total by `alias` and `vendor` (errors also by
# exception `type`); django_cache_get_total, _get_hits_total and _get_misses_total.
DJANGO_PROMETHEUS = (
    DB_STATEMENTS,
    DB_BULK_STATEMENTS,
    DB_ERRORS,
    DB_QUERY_DURATION,
    DB_CONNECTIONS,
    DB_CONNECTION_ERRORS,
    CACHE_GETS,
    CACHE_HITS,
    CACHE_MISSES,
)


def service_name() -> str:
    return settings.CLEAVE_SERVICE_NAME


# --- HTTP: one middleware for the seed's metrics and the access log ---------------


def _route(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is None or match.route is None:
        return "unmatched"
    return "/" + match.route


class HttpMetricsMiddleware:
    """
    Time every request; count it by method, route pattern, status and service;
    log one access line (INFO, `cleave.access`) with the same fields, the
    duration, the client's address (`cleave.proxies`) and the flow ids the
    log filter adds.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        address = client_address(request)
        # for gunicorn's own access line too (config/gunicorn.py reads it from the environ)
        request.META[CLIENT_ADDRESS_ENVIRON] = address
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        method = request.method if request.method in _METHODS else "other"
        labels = (method, _route(request), str(response.status_code), service_name())
        HTTP_REQUEST_DURATION.labels(*labels).observe(elapsed)
        HTTP_REQUESTS.labels(*labels).inc()
        access_logger.info(
            "%s %s %s %.1f ms",
            method,
            request.path,
            response.status_code,
            elapsed * 1000,
            extra={
                "http_method": method,
                "http_route": labels[1],
                "http_path": request.path,
                "http_status": response.status_code,
                "duration_ms": round(elapsed * 1000, 2),
                "user_agent": request.headers.get("User-Agent", "")[:200],
                "client_address": address,
            },
        )
        return response


_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


# --- multiprocess files -------------------------------------------------------------


def multiprocess_dir() -> Path | None:
    value = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    return Path(value) if value else None


def forget_process(pid: int) -> None:
    """A process stopped: its live gauges no longer count (gunicorn's child_exit hook)."""
    if multiprocess_dir() is None:
        return

    multiprocess.mark_process_dead(pid)


_PID_IN_NAME = re.compile(r"_(\d+)\.db$")


def forget_dead_processes() -> None:
    """Drop the live-gauge files of pids that no longer run (a crash, a restart)."""
    folder = multiprocess_dir()
    if folder is None or not folder.is_dir():
        return
    for path in folder.glob("gauge_live*_*.db"):
        match = _PID_IN_NAME.search(path.name)
        if match is None:
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
        except PermissionError:  # alive, another user's
            pass


def serve_port():
    """
    Serve this process's metrics on `CLEAVE_METRICS_PORT` (a Celery worker or a
    relay in a pod of its own, whose samples no web process's scrape sees); off
    when unset. The port is for the scraper inside the cluster: no Service
    exposes it. Returns the (server, thread) serving it, or None.
    """

    port = settings.CLEAVE_METRICS_PORT
    if not port:
        return None

    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder is not None:
        multiprocess.MultiProcessCollector(registry, path=str(folder))
    served = start_http_server(port, registry=registry)
    logger.info("Metrics served on port %s", port)
    return served


# --- circuit breakers ----------------------------------------------------------------


_CIRCUIT_VALUES = {"closed": 0, "open": 1, "half_open": 2}


def record_circuit_created(breaker) -> None:
    """A new breaker starts closed: the gauge shows every target this process calls."""

    CIRCUIT_STATE.labels(breaker.caller, breaker.target).set(0)


def record_circuit_transition(breaker, old: str, new: str) -> None:
    """A circuit breaker listener: the state gauge and the transition counter."""

    CIRCUIT_STATE.labels(breaker.caller, breaker.target).set(_CIRCUIT_VALUES.get(new, 0))
    CIRCUIT_TRANSITIONS.labels(breaker.caller, breaker.target, new).inc()
