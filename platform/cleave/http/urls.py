"""URL patterns the platform contributes: one `/api/<prefix>/` mount per local context."""

from django.urls import include, path

from cleave.core.registry import all_contexts

# where every context's API is mounted (`/api/<prefix>/`)
API_PREFIX = "/api/"


def context_urlpatterns() -> list:
    return [
        path(
            f"{API_PREFIX.lstrip('/')}{cfg.url_prefix}/",
            include((cfg.api_urlconf, cfg.label), namespace=cfg.label),
        )
        for cfg in all_contexts()
    ]
