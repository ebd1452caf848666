"""
The web process's WSGI application: Django's middleware stack for browsers,
and shorter ones for the API's requests that carry no cookie.

- A request under `/api/` with a valid service token (`X-Service-Token`) comes
  from another context's service client (cleave.calls.client), never from a
  browser: it skips what serves browsers (`BROWSER_ONLY`: sessions, CSRF,
  authentication by session, messages, sign-in lock-outs, static files, the
  probes, and the header that forbids framing a page).
- Any other request under `/api/` without a `Cookie` header (a customer with
  a bearer token, an anonymous read of the catalogue) has no session to load
  and nothing a forged cross-site request could ride on: it skips what works
  on cookies (`SESSION_ONLY`: the same but the framing header).
- Everything else (the admin, the docs' static files, any request with a
  cookie) takes the whole stack.

What stays in every stack, in the same order: the flow ids, the metrics and
access line, the security and common middleware, the database's 503 and,
when tracing is on, the server span. Every stack is Django's own handler, so
request signals, exception handling and problem answers are alike;
`settings.MIDDLEWARE` is left as it is, so Django's deploy checks read it as
before. A service token that does not verify takes the cookie-less or the
whole stack (and its view answers 401 as always). What it bought:
bench/README.md, "The service hop" and "Read path".
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler

from cleave.auth.tokens import SERVICE_TOKEN_HEADER, TokenError, decode_service_token

# What works on cookies (or serves what is not under /api/): an API request
# without a cookie skips it.
SESSION_ONLY = frozenset(
    {
        "cleave.runtime.probes.ProbeMiddleware",  # /health, /ready, /metrics: not under /api/
        "whitenoise.middleware.WhiteNoiseMiddleware",  # /static/
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
        "axes.middleware.AxesMiddleware",  # the admin's sign-in, Django's users only
    }
)
# What serves browsers only: a service call skips it.
BROWSER_ONLY = SESSION_ONLY | {"django.middleware.clickjacking.XFrameOptionsMiddleware"}

_TOKEN_ENVIRON = "HTTP_" + SERVICE_TOKEN_HEADER.upper().replace("-", "_")


class ShorterHandler(WSGIHandler):
    """Django's WSGI handler with the middleware of `settings.MIDDLEWARE` minus `left_out`."""

    def __init__(self, left_out: frozenset[str]) -> None:
        self.left_out = left_out
        super().__init__()

    def load_middleware(self, is_async: bool = False) -> None:
        # built once, when the process starts, before it serves any request
        full = settings.MIDDLEWARE
        self.middleware = [path for path in full if path not in self.left_out]
        settings.MIDDLEWARE = self.middleware
        try:
            super().load_middleware(is_async)
        finally:
            settings.MIDDLEWARE = full


def is_cookieless_api(environ: dict[str, Any]) -> bool:
    """Under `/api/`, without a `Cookie` header."""
    return environ.get("PATH_INFO", "").startswith("/api/") and not environ.get("HTTP_COOKIE")


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
        self.service = ShorterHandler(BROWSER_ONLY)
        self.api = ShorterHandler(SESSION_ONLY)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        if is_service_call(environ):
            return self.service(environ, start_response)
        if is_cookieless_api(environ):
            return self.api(environ, start_response)
        return self.web(environ, start_response)
