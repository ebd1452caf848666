"""
"Needs attention": one admin page, and its JSON for scripts, listing what needs
an operator in every context (in a split, the admin console reads every
context's alias, so every group): failed, overdue, stalled and waiting sagas,
overdue compensations, dead letters not redriven, an outbox backlog and its
age, a database that cannot be read. Each row links to the page that acts on
it. An empty page says the shop is healthy.

    /admin/attention/        the page (a staff session, as every admin page)
    /admin/attention.json    the same report as JSON; 401/403 problem details
                             instead of the sign-in page

What counts, and why, is `cleave.runtime.state` (shared with `manage.py
status` and `/metrics`). An operator sees only the kinds whose table they may
view (a saga needs `view_sagainstance`); a database that cannot be read is
shown to every operator.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse
from django.urls import path

from cleave.http.problems import problem_response
from cleave.runtime import state


def visible_kinds(user: Any) -> set[str]:
    """The kinds of trouble `user` may see: those of the tables they may view."""
    return {
        kind
        for kind in state.KINDS
        if kind not in state.VIEW_PERMISSION or user.has_perm(state.VIEW_PERMISSION[kind])
    }


def report_for(request: HttpRequest) -> state.Report:
    return state.attention().only(visible_kinds(request.user))


def page(request: HttpRequest) -> TemplateResponse:
    report = report_for(request)
    now = report.checked_at
    sections = [
        {
            "kind": kind,
            "heading": heading,
            "count": report.count(kind),
            "rows": [
                {
                    "item": item,
                    "since": state.timestamp(item.since, empty=""),
                    "age": state.age((now - item.since).total_seconds()) if item.since else "",
                }
                for item in items
            ],
        }
        for kind, heading, items in report.by_kind()
    ]
    contexts = [
        {
            "label": context.label,
            "alias": context.alias,
            "error": context.error,
            "outbox": context.outbox.pending,
            "oldest": state.age(context.outbox.age(now)) if context.outbox.oldest else "-",
            "dead": context.dead_letters,
            "sagas": sum(context.sagas.get(kind, 0) for kind in state.SAGA_KINDS),
        }
        for context in report.contexts
    ]
    return TemplateResponse(
        request,
        "admin/cleave/attention.html",
        {
            **admin.site.each_context(request),
            "title": "Needs attention",
            "checked_at": state.timestamp(now),
            "healthy": report.healthy,
            "sections": sections,
            "contexts": contexts,
        },
    )


def as_json(request: HttpRequest) -> JsonResponse:
    if not request.user.is_authenticated:
        return problem_response(401, "Not authenticated", "Sign in to the admin first.")
    if not admin.site.has_permission(request):
        return problem_response(403, "Forbidden", "Only active staff may read this.")
    return JsonResponse(report_for(request).to_dict())


def install(site: admin.AdminSite) -> None:
    """Add the page and its JSON to `site`'s URLs, under its sign-in."""
    get_urls = site.get_urls

    def urls():
        return [
            path("attention/", site.admin_view(page), name="attention"),
            path("attention.json", as_json, name="attention_json"),
            *get_urls(),
        ]

    site.get_urls = urls
