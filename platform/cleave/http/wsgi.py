"""
The web process's WSGI application: Django's middleware stack for browsers
and customers, and a shorter one for calls from other contexts.

A request under `/api/` that carries a valid service token (`X-Service-Token`)
comes from another context's service client (cleave.calls.client), never from
a browser: it has no session, no CSRF cookie, no sign-in to lock out, no
static file to serve and no page to frame. It goes through the same
middleware minus those (`BROWSER_ONLY`), in the same order: the flow ids, the
metrics and access line, the security and common middleware, the database's
503 and, when tracing is on, the tracing middleware stay. Both stacks are
Django's own handler, so request signals, exception handling and problem
answers are alike; `settings.MIDDLEWARE` is left as it is, so Django's deploy
checks read it as before. A token that does not verify takes the full stack
(and its view answers 401 as always). What it bought: bench/README.md, "The
service hop".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from cleave.auth.tokens import SERVICE_TOKEN_HEADER, TokenError, decode_service_token

# What serves browsers only: a service call skips it.
BROWSER_ONLY = frozenset(
    {
        "cleave.runtime.probes.ProbeMiddleware",  # /health, /ready, /metrics: not under /api/
        "whitenoise.middleware.WhiteNoiseMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "django.middleware.clickjacking.XFrameOptionsMiddleware",
        "axes.middleware.AxesMiddleware",
    }
)

_TOKEN_ENVIRON = "HTTP_" + SERVICE_TOKEN_HEADER.upper().replace("-", "_")


class ServiceCallHandler(WSGIHandler):
    """Django's WSGI handler with the middleware of `settings.MIDDLEWARE` minus `BROWSER_ONLY`."""

    def load_middleware(self, is_async: bool = False) -> None:
        # built once, when the process starts, before it serves any request
        full = settings.MIDDLEWARE
        settings.MIDDLEWARE = [path for path in full if path not in BROWSER_ONLY]
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def is_service_call(environ: dict[str, Any]) -> bool:
    """Under `/api/`, with a service token that verifies."""
    token = environ.get(_TOKEN_ENVIRON)
    if not token or not environ.get("PATH_INFO", "").startswith("/api/"):
        return False
    try:
        decode_service_token(token)  # cached: the view's authentication finds it again
    except TokenError:
        return False
    return True


class Application:
    """The WSGI callable gunicorn serves: each request to the stack it needs."""

    def __init__(self, web: WSGIHandler) -> None:
        self.web = web
        self.service = ServiceCallHandler()

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if is_service_call(environ):
            return self.service(environ, start_response)
        return self.web(environ, start_response)
