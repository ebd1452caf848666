"""
What the machines that operate a process ask it: `/health` (liveness),
`/ready` (readiness: every local database alias and the broker answer) and
`/metrics` (Prometheus), and who may see the operational detail.

`ProbeMiddleware` answers the probes before anything looks at the Host header;
`/metrics` and the details of `/ready` (aliases, errors, circuits) are for the
networks `CLEAVE_METRICS_ALLOW` names, or a caller with `CLEAVE_METRICS_TOKEN`.
This module sits above the delivery layer (it reads the outbox, the sagas and
the client's circuits, through `cleave.runtime.state`); the metric names
themselves are `cleave.observability.metrics`.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable

from django.conf import settings
from django.db import connections
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from kombu import Connection
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily

from cleave.calls.client import circuit_breakers
from cleave.core.moves import ContextLocation
from cleave.core.proxies import client_address
from cleave.core.registry import all_contexts
from cleave.http.problems import problem_response
from cleave.observability.logs import REQUEST_ID_HEADER, request_flow
from cleave.observability.metrics import CLIENT_ADDRESS_ENVIRON, multiprocess_dir
from cleave.runtime import state

logger = logging.getLogger(__name__)


# --- probes ----------------------------------------------------------------------


PROBE_METHODS = "GET, HEAD, OPTIONS"


class ProbeMiddleware:
    """
    Answer `/health` and `/ready` before anything looks at the Host header:
    Kubernetes probes a pod by its IP, which no `DJANGO_ALLOWED_HOSTS` lists,
    and Django would answer 400. Placed first in MIDDLEWARE; every other path
    goes on through the stack (and the host check) as usual.

    Every method gets its answer here: GET the probe, HEAD the same without
    its body, OPTIONS the methods allowed, anything else 405 problem details
    naming them (not Django's empty HTML page, nor a CSRF refusal).
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.probes = {"/health": health, "/ready": ready}

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = self.probes.get(request.path_info)
        if probe is None:
            return self.get_response(request)
        request.META[CLIENT_ADDRESS_ENVIRON] = client_address(request)  # gunicorn's access line
        with request_flow(request) as ids:
            response = self._answer(probe, request)
        response[REQUEST_ID_HEADER] = ids.request_id
        return response

    @staticmethod
    def _answer(probe: Callable[[HttpRequest], HttpResponse], request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            response = probe(request)
            if request.method == "HEAD":
                response.content = b""
            return response
        if request.method == "OPTIONS":
            response = HttpResponse(status=204)
            del response["Content-Type"]  # no body, no type
        else:
            response = problem_response(
                405,
                "Method not allowed",
                f"{request.path_info} answers {PROBE_METHODS}, not {request.method}.",
            )
        response["Allow"] = PROBE_METHODS
        return response


def health(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers."""
    return JsonResponse({"status": "ok"})


def _check_database(alias: str) -> dict[str, object]:
    started = time.perf_counter()
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any failure means "not ready", never a 500
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


def ready(request: HttpRequest) -> JsonResponse:
    """Readiness: every local database alias (and the broker, when used) answers."""
    checks: dict[str, dict[str, object]] = {}
    for alias in connections.settings:
        checks[f"database:{alias}"] = _check_database(alias)
    if settings.CLEAVE_EVENT_TRANSPORT != "inprocess":
        checks["broker"] = _check_broker(settings.CELERY_BROKER_URL)
    healthy = all(check["status"] == "ok" for check in checks.values())
    body: dict[str, object] = {"status": "ok" if healthy else "unavailable"}
    if internal_caller(request):
        # the aliases, errors and circuits are for operators and probes, not the world
        body["checks"] = checks
        # what this process's calls to other contexts meet; an open circuit
        # does not make this process unready (it still serves what it can)
        body["circuits"] = _circuits()
    return JsonResponse(body, status=200 if healthy else 503)


def _circuits() -> dict[str, dict[str, object]]:
    return {
        f"{breaker.caller}->{breaker.target}": {
            "state": breaker.state,
            "retry_after": round(breaker.retry_after(), 1),
        }
        for breaker in circuit_breakers()
    }


def _check_broker(url: str) -> dict[str, object]:
    started = time.perf_counter()
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # any failure means "not ready"
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"[:300]}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


# --- who may see operational detail --------------------------------------------


def internal_caller(request: HttpRequest) -> bool:
    """
    Whether the request comes from the networks `CLEAVE_METRICS_ALLOW` names
    (the scraper, the probes, the cluster) or carries the metrics token:
    who may see operational detail. The address is the client's as
    `cleave.core.proxies` decides it: a client cannot name one of its own.
    """
    token = settings.CLEAVE_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and given.startswith("Bearer ") and secrets.compare_digest(given[7:], token):
        return True
    try:
        address = ipaddress.ip_address(client_address(request))
    except ValueError:
        return False
    return any(address in network for network in settings.CLEAVE_METRICS_ALLOW)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text format: every process of this service, and the state collector."""
    if request.method != "GET" or not internal_caller(request):
        return problem_response(404, "Not found", f"No resource at {request.path}.")
    registry = CollectorRegistry()
    folder = multiprocess_dir()
    if folder is not None:
        multiprocess.MultiProcessCollector(registry, path=str(folder))
    else:
        registry = REGISTRY
    output = generate_latest(registry)
    state = CollectorRegistry(auto_describe=False)
    state.register(StateCollector())
    output += generate_latest(state)
    return HttpResponse(output, content_type=CONTENT_TYPE_LATEST)


# --- state read at scrape time ------------------------------------------------------


class StateCollector:
    """Outbox backlog and lag, sagas not finished, open dead letters: per local context alias."""

    def collect(self):
        pending = GaugeMetricFamily(
            "cleave_outbox_pending", "Committed events not yet published.", labels=["context"]
        )
        lag = GaugeMetricFamily(
            "cleave_outbox_lag_seconds",
            "Age of the oldest committed event not yet published (0 when none).",
            labels=["context"],
        )
        running = GaugeMetricFamily(
            "cleave_sagas_running",
            "Sagas not finished (running or compensating), and how many of them wait for a "
            "participant to come back.",
            labels=["context", "saga_type", "state", "waiting"],
        )
        dead = GaugeMetricFamily(
            "cleave_dead_letters", "Dead letters not redriven.", labels=["context"]
        )
        now = timezone.now()
        for cfg in all_contexts():
            alias = cfg.database
            try:
                backlog = state.outbox_backlog(alias)
                pending.add_metric([cfg.label], backlog.pending)
                lag.add_metric([cfg.label], backlog.age(now))
                for (saga_type, saga_state, waits), n in state.unfinished_sagas(alias).items():
                    waiting = "true" if waits else "false"
                    running.add_metric([cfg.label, saga_type, saga_state, waiting], n)
                dead.add_metric([cfg.label], state.open_dead_letters(alias))
            except Exception:  # a scrape must not fail because one alias is down
                logger.warning("Could not read the state metrics of %s", alias, exc_info=True)
        yield from (pending, lag, running, dead)
        yield from _move_pauses()


def _move_pauses():
    """How long the last move of each moved context paused its writes (`move_context`)."""
    pauses = GaugeMetricFamily(
        "cleave_context_move_pause_seconds",
        "How long the last move of a context's database paused its writes.",
        labels=["context"],
    )
    try:
        for label, seconds in ContextLocation.objects.values_list("label", "pause_seconds"):
            pauses.add_metric([label], seconds)
    except Exception:  # `default` unreachable: the other metrics still answer
        logger.warning("Could not read the context moves", exc_info=True)
    yield pauses
