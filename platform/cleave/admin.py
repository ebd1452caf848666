"""
Operator views of the platform tables: outbox, inbox, saga instances.

These tables exist once per context alias, so each list has a "context" filter
choosing the alias (the first local context by default), and a detail page
finds its row in whichever alias holds it.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from django.contrib import admin, messages
from django.http import HttpRequest

from cleave.contexts import all_contexts
from cleave.events.models import InboxRecord, OutboxEvent
from cleave.sagas.models import SagaInstance, SagaStepLog

ALIAS_PARAM = "context"


def _aliases() -> list[tuple[str, str]]:
    return [(cfg.database, cfg.label) for cfg in all_contexts()]


def _alias_from_request(request: HttpRequest) -> str | None:
    if hasattr(request, "_cleave_alias"):
        return request._cleave_alias
    wanted = request.GET.get(ALIAS_PARAM)
    if not wanted and "_changelist_filters" in request.GET:
        wanted = parse_qs(request.GET["_changelist_filters"]).get(ALIAS_PARAM, [None])[0]
    known = dict(_aliases())
    if wanted in known:
        return wanted
    return _aliases()[0][0] if _aliases() else None


class ContextFilter(admin.SimpleListFilter):
    title = "context"
    parameter_name = ALIAS_PARAM

    def lookups(self, request, model_admin):
        return _aliases()

    def choices(self, changelist):
        current = (
            _alias_from_request(changelist.request) if hasattr(changelist, "request") else None
        )
        for alias, label in self.lookup_choices:
            yield {
                "selected": (self.value() or current) == alias,
                "query_string": changelist.get_query_string({self.parameter_name: alias}),
                "display": label,
            }

    def queryset(self, request, queryset):
        return queryset  # the ModelAdmin already chose the alias


class PerAliasAdmin(admin.ModelAdmin):
    """A ModelAdmin for a platform table that lives in every context alias."""

    def get_queryset(self, request):
        return super().get_queryset(request).using(_alias_from_request(request))

    def get_object(self, request, object_id, from_field=None):
        for alias, _label in _aliases():
            request._cleave_alias = alias
            obj = super().get_object(request, object_id, from_field)
            if obj is not None:
                return obj
        del request._cleave_alias
        return None

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(OutboxEvent)
class OutboxEventAdmin(PerAliasAdmin):
    list_display = ("occurred_at", "type", "source", "status", "attempts", "correlation_id", "id")
    list_filter = (ContextFilter, "status", "type", "occurred_at")
    search_fields = ("id", "type", "correlation_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    date_hierarchy = None
    actions = ("redeliver",)

    @admin.action(description="Deliver the selected pending events again")
    def redeliver(self, request, queryset):
        from cleave.events.transports import get_transport

        alias = queryset.db
        ids = list(queryset.filter(status=OutboxEvent.Status.PENDING).values_list("id", flat=True))
        get_transport().committed(alias, ids)
        messages.info(request, f"Redelivered {len(ids)} pending event(s) from {alias}.")

    def has_change_permission(self, request, obj=None) -> bool:
        # the action needs change permission; the form stays read-only
        return request.user.is_superuser and obj is None


@admin.register(InboxRecord)
class InboxRecordAdmin(PerAliasAdmin):
    list_display = ("processed_at", "event_type", "source", "handler", "event_id")
    list_filter = (ContextFilter, "event_type", "source", "processed_at")
    search_fields = ("event_id", "handler")


class SagaStepInline(admin.TabularInline):
    model = SagaStepLog
    extra = 0
    can_delete = False
    fields = (
        "step_index",
        "step",
        "kind",
        "attempt",
        "status",
        "started_at",
        "duration_ms",
        "result",
        "error",
    )
    readonly_fields = fields
    ordering = ("id",)

    def get_queryset(self, request):
        return super().get_queryset(request).using(_alias_from_request(request))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SagaInstance)
class SagaInstanceAdmin(PerAliasAdmin):
    list_display = ("created_at", "saga_type", "state", "current_step", "failure_reason", "id")
    list_filter = (ContextFilter, "state", "saga_type", "created_at")
    search_fields = ("id", "correlation_id")
    readonly_fields = [f.name for f in SagaInstance._meta.fields]
    inlines = (SagaStepInline,)
