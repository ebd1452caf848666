"""WSGI entry point (gunicorn config.wsgi)."""

import os

from django.core.wsgi import get_wsgi_application

from cleave.core import conf

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

application = get_wsgi_application()

# The embedded default has no beat or worker processes: the web process runs
# the periodic jobs (saga recovery, relay sweeps, expiries) itself.
if conf.value("CLEAVE_EMBEDDED_SCHEDULER"):
    from cleave.runtime import periodic

    periodic.start_embedded()
