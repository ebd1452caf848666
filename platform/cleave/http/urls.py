"""URL patterns the platform contributes: one `/api/<prefix>/` mount per local context."""

from django.urls import include, path

from cleave.core.registry import all_contexts


def context_urlpatterns() -> list:
    return [
        path(f"api/{cfg.url_prefix}/", include((cfg.api_urlconf, cfg.label), namespace=cfg.label))
        for cfg in all_contexts()
    ]
