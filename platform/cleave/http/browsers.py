"""
Django's middleware that serves browsers, skipped for an API call without a
cookie.

Sessions, CSRF, the signed-in user and messages exist for the admin and for
an operator's session on the API. A call to `/api/` that carries no cookie at
all (a shop front with a bearer token or none, another context with a service
token) has no session to load, no CSRF token to check or set, no user in a
session and no message to show: each of those middleware would only build
empty objects for it (a sixth of a cached product list's time, cProfile).
These subclasses of Django's own (so Django's checks still find them, and
they are listed in `MIDDLEWARE` in their places) pass such a call straight
on; every other request goes through them unchanged:

- a request with any cookie: an operator's session reads the API too (DRF's
  `SessionAuthentication`, which enforces CSRF itself for it);
- anything outside `/api/`: the admin sets its CSRF cookie on the sign-in
  page, which a browser first asks for without one.

DRF's `SessionAuthentication` finds no `request.user` on a skipped call and
reads it as no session, which is what the skipped middleware would have said.
"""

from __future__ import annotations

from django.contrib.auth import middleware as auth
from django.contrib.messages import middleware as messages
from django.contrib.sessions import middleware as sessions
from django.middleware import csrf

from cleave.http.urls import API_PREFIX


def api_call_without_cookies(request) -> bool:
    """A call to the API that carries no cookie: no browser session can be involved."""
    return not request.META.get("HTTP_COOKIE") and request.path_info.startswith(API_PREFIX)


class _ForBrowsers:
    def __call__(self, request):
        if api_call_without_cookies(request):
            return self.get_response(request)
        return super().__call__(request)


class SessionMiddleware(_ForBrowsers, sessions.SessionMiddleware):
    pass


class AuthenticationMiddleware(_ForBrowsers, auth.AuthenticationMiddleware):
    pass


class MessageMiddleware(_ForBrowsers, messages.MessageMiddleware):
    pass


class CsrfViewMiddleware(_ForBrowsers, csrf.CsrfViewMiddleware):
    # Django calls process_view apart from __call__
    def process_view(self, request, callback, callback_args, callback_kwargs):
        if api_call_without_cookies(request):
            return None
        return super().process_view(request, callback, callback_args, callback_kwargs)
