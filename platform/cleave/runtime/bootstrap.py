"""
One bootstrap per process role: the one place a process is wired up.

Each entry point calls its role's function and does nothing else:

- `web`: `config/wsgi.py` calls `web()` in each gunicorn worker, which drops
  the live gauges of processes that stopped and starts the scheduler of the
  periodic jobs (relay sweep, saga recovery, expiries) unless
  `CLEAVE_EMBEDDED_SCHEDULER=off`; `config/gunicorn.py` calls `web_master()` in
  the master, which holds no Django unless it registers in Consul.
- `worker`: `config/celery.py` calls `worker_init()` (the event queues'
  bindings) and `worker_ready()` (the dead-letter topology, the relay sweep
  when `CLEAVE_EVENT_RELAY_IN_WORKER`, the metrics port).
- `beat`: `config/celery.py` calls `beat_init()` (the event queues' bindings).
- `relay`: `manage.py events relay` calls `relay()`, the relay sweep in the
  foreground.

Every background thread is a `cleave.core.threads.Service`: the role's own
start here; the others (the relay's outlet, the saga monitor and waker, the
discovery prober) start on first use through the same owner, which stops
them all at exit (`threads.stop_all`).

The role is declared before Django is set up (`declare()`), so the settings
know a serving process from `manage.py`: a web, worker, beat or relay
process never installs the tools (`cleave_tools`).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

ROLES = ("web", "worker", "beat", "relay")

_role: str | None = None


def declare(role: str) -> None:
    """Name this process's role (before Django is set up: the settings read it)."""
    global _role
    if role not in ROLES:
        raise ValueError(f"unknown process role {role!r}; one of {ROLES}")
    _role = role


def role() -> str | None:
    """This process's role; None for `manage.py` and the tests."""
    return _role


def serving() -> bool:
    """Whether this process serves (web, worker, beat, relay) rather than runs a command."""
    return _role is not None


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


# Imported inside the functions below, once Django is set up: the modules
# define or import models, which need the app registry.


def web() -> Any:
    """A web process (each gunicorn worker): the WSGI application, and its threads."""
    declare("web")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.wsgi import get_wsgi_application

    from cleave.http.wsgi import Application

    # a service call skips the middleware that serves browsers (cleave.http.wsgi)
    application = Application(get_wsgi_application())
    from cleave.core import conf, locations, threads
    from cleave.observability.metrics import forget_dead_processes
    from cleave.runtime import periodic

    # the live gauges of processes that stopped (a crash, a restart) no longer
    # count: each new worker drops them, so the master needs no Django
    forget_dead_processes()
    # requests follow a context's move within a second (cleave.core.locations)
    locations.watch()
    if conf.value("CLEAVE_EMBEDDED_SCHEDULER"):
        # the embedded default has no beat or relay process: the web process
        # runs the periodic jobs (saga recovery, relay sweeps, expiries) itself
        periodic.start()
    atexit.register(threads.stop_all, 2.0)
    return application


def web_master(bind: str) -> list[str]:
    """
    A gunicorn master: it holds no Django (its workers do), unless it must
    register this server in Consul (`CLEAVE_DISCOVERY=consul`).
    """
    declare("web")
    from cleave.core import conf

    if conf.value("CLEAVE_DISCOVERY") != "consul":
        return []
    _setup()
    from cleave.calls.consul import register_local

    return register_local(bind)


def worker_init(app: Any) -> None:
    """A Celery worker, before it selects its queues: bind them to their event types."""
    from cleave.messaging.broker import topology

    topology.install(app)


def worker_ready(app: Any) -> None:
    """A Celery worker, consuming: the dead-letter topology, the relay, the metrics port."""
    from django.conf import settings

    from cleave.core import threads
    from cleave.messaging.broker import topology
    from cleave.observability.metrics import serve_port
    from cleave.runtime import periodic

    try:
        with app.connection_for_write() as conn:
            topology.declare(conn)
    except Exception:  # the relay declares them too, before it publishes
        logging.getLogger("cleave.events").exception("Could not declare the event topology")
    if settings.CLEAVE_EVENT_RELAY_IN_WORKER:
        periodic.start(only=[periodic.RELAY_SWEEP])
    serve_port()
    atexit.register(threads.stop_all, 2.0)


def beat_init(app: Any) -> None:
    """Celery beat: the event queues' bindings, declared like a worker's."""
    from cleave.messaging.broker import topology

    topology.install(app)


def relay(
    stop: threading.Event,
    *,
    every: float | None = None,
    on_sweep: Callable[[dict], None] | None = None,
) -> None:
    """The relay in the foreground (`manage.py events relay`) until `stop` is set."""
    declare("relay")
    from cleave.observability.metrics import serve_port
    from cleave.runtime import periodic

    serve_port()  # with CLEAVE_METRICS_PORT, for a relay in a pod of its own

    def report(job: periodic.Job, counts: Any) -> None:
        if on_sweep is not None and counts:
            on_sweep(counts)

    periodic.run_forever(stop, only=[periodic.RELAY_SWEEP], every=every, on_result=report)
