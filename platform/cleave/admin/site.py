"""
The one admin site, and what every ModelAdmin of the project does.

Django's default site (`admin.site`, which `config/urls.py` mounts at
`/admin/`) is configured here rather than replaced by a subclass, so the
project's settings keep installing plain `django.contrib.admin`:

- its titles say Cleave, and "View site" opens the API's documentation;
- its index leads to the "needs attention" page (`cleave.admin.attention`);
- in a split deployment, its index lists the contexts served elsewhere;
- every admin counts a list's rows only up to 10,000, and never the whole
  table again (`cleave.admin.paging`);
- every admin writes times to the second with their zone
  (`cleave.admin.display`);
- no admin filters on a secret (`refers_to_secret`).
"""

from __future__ import annotations

import re

from django.conf import settings
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.templatetags import admin_list

from cleave.admin import attention
from cleave.admin.display import readable_datetimes
from cleave.admin.paging import CappedPaginator
from cleave.core.registry import context_config_class

admin.site.site_header = "Cleave"
admin.site.site_title = "Cleave admin"
admin.site.index_title = "Cleave administration"
admin.site.site_url = "/api/docs/"
admin.site.index_template = "admin/cleave/index.html"
attention.install(admin.site)


def _with_remote_contexts(get_app_list):
    """
    In a split deployment the admin index lists every context: those served
    elsewhere link to `/admin/<label>/`, which the gateway routes to the
    process that serves them (the operator's session, in the shared `default`
    alias, is valid there too). Nothing changes in the monolith.
    """

    def app_list(request, app_label=None):
        apps = get_app_list(request, app_label)
        if app_label is not None or not request.user.is_staff:
            return apps
        local = set(settings.CLEAVE_CONTEXTS)
        for label in settings.CLEAVE_ALL_CONTEXTS:
            config = context_config_class(label)
            if label in local or config is None:
                continue
            apps.append(
                {
                    "name": f"{config.verbose_name}",
                    "app_label": label,
                    "app_url": f"/admin/{label}/",
                    "has_module_perms": True,
                    "models": [],
                }
            )
        return sorted(apps, key=lambda app: app["name"].lower())

    return app_list


admin.site.get_app_list = _with_remote_contexts(admin.site.get_app_list)


# --- lists that stay quick on millions of rows (see cleave.admin.paging) -------------------

admin.ModelAdmin.paginator = CappedPaginator
admin.ModelAdmin.show_full_result_count = False


# --- times to the second, with their zone ---------------------------------------------------

# the admin shows a field's value through this one function, in its lists and
# on its detail pages (see cleave.admin.display)
helpers.display_for_field = readable_datetimes(helpers.display_for_field)
admin_list.display_for_field = readable_datetimes(admin_list.display_for_field)


# --- no admin filters on a secret -----------------------------------------------------------

# A field (or a key of a JSON field) that holds a secret or what proves one: a
# password hash, a token or its id, a session key, anything called a secret.
_SECRET = re.compile(r"(^|_)(password|passwd|secret|token|jti|hash)(_|$)|^session_key$")


def refers_to_secret(lookup: str) -> bool:
    """Whether a filter lookup (`password__startswith`, `data__token`) reaches a secret."""
    return any(_SECRET.search(part) for part in lookup.lower().split("__"))


def _refusing_secret_lookups(lookup_allowed):
    """
    Every admin's `lookup_allowed`, for every operator (superusers too): a
    filter in the query string on a secret is refused (Django answers 400).
    The admin never shows a password hash or a token, but it filters by any
    field it is asked to, and the count of `?password__startswith=$argon2id$v=19$m=1`
    answers yes or no: a view-only operator could read hashes one character
    at a time. Django's own user admin refuses `password` alone; this covers
    every model, JSON keys included (a verification token in an event's data).
    """

    def allowed(self, lookup, value, request=None):
        if refers_to_secret(lookup):
            return False
        return lookup_allowed(self, lookup, value, request)

    allowed.__doc__ = lookup_allowed.__doc__
    return allowed


admin.ModelAdmin.lookup_allowed = _refusing_secret_lookups(admin.ModelAdmin.lookup_allowed)
