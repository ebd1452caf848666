"""WSGI entry point (gunicorn config.wsgi): the web role's bootstrap."""

from cleave.runtime import bootstrap

application = bootstrap.web()
