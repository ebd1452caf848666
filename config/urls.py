"""Root URLs: operations endpoints, the admin, API docs and every local context's API."""

from django.contrib import admin
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from cleave.http.urls import context_urlpatterns
from cleave.runtime import probes

urlpatterns = [
    path("health", probes.health, name="health"),
    path("ready", probes.ready, name="ready"),
    path("metrics", probes.metrics_view, name="metrics"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    *context_urlpatterns(),
]

handler400 = "cleave.http.problems.handler400"
handler403 = "cleave.http.problems.handler403"
handler404 = "cleave.http.problems.handler404"
handler500 = "cleave.http.problems.handler500"
