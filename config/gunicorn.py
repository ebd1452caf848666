"""
Gunicorn hooks: `gunicorn -c python:config.gunicorn config.wsgi --bind ...`.

The master drops the metrics of workers that stopped (see cleave.metrics).
With CLEAVE_DISCOVERY=consul the master registers every context this process
serves in Consul once it listens (at its first bind, or CLEAVE_ADVERTISE_URL),
and deregisters them when it stops cleanly. Binds, workers and threads stay on
the command line. See docs/discovery.md.
"""

import os

_registered: list[str] = []


def when_ready(server) -> None:
    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()
    from cleave.metrics import forget_dead_processes
    from cleave.resilience.consul import register_local

    # gauges left by processes of an earlier run no longer count
    forget_dead_processes()
    _registered[:] = register_local(server.cfg.bind[0])


def child_exit(server, worker) -> None:
    """A worker stopped: its live gauges leave the scrape (its counters stay)."""
    from cleave.metrics import forget_process

    forget_process(worker.pid)


def on_exit(server) -> None:
    # After USR2 a new master serves the same binds under the same ids: the
    # old one leaves them registered.
    if not _registered or getattr(server, "reexec_pid", 0):
        return
    from cleave.resilience.consul import deregister_local

    deregister_local(_registered)
    _registered.clear()
