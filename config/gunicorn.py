"""
Gunicorn hooks: `gunicorn -c python:config.gunicorn config.wsgi --bind ...`.

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
    from cleave.resilience.consul import register_local

    _registered[:] = register_local(server.cfg.bind[0])


def on_exit(server) -> None:
    # After USR2 a new master serves the same binds under the same ids: the
    # old one leaves them registered.
    if not _registered or getattr(server, "reexec_pid", 0):
        return
    from cleave.resilience.consul import deregister_local

    deregister_local(_registered)
    _registered.clear()
