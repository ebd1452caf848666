"""
Operator views of the platform tables: outbox, inbox, deliveries, dead
letters, saga instances; and what every admin of the project refuses (a
filter on a secret field, see `refers_to_secret`).

These tables exist once per context alias, so each list has a "context" filter
choosing the alias, and a detail page finds its row in whichever alias holds
it. Without a choice a list opens on the first local context whose table holds
rows (the orders alias holds every checkout saga), so it never opens on an
empty page while another alias has something to show.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs

from django.conf import settings
from django.contrib import admin, messages
from django.db import DatabaseError, models
from django.http import HttpRequest
from django.utils import timezone

from cleave import sagas
from cleave.core.registry import all_contexts, context_config_class
from cleave.messaging import delivery
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent
from cleave.messaging.transports import get_transport
from cleave.sagas.models import SagaInstance, SagaStepLog

ALIAS_PARAM = "context"


def _aliases() -> list[tuple[str, str]]:
    return [(cfg.database, cfg.label) for cfg in all_contexts()]


def _alias_from_request(request: HttpRequest, model: type[models.Model]) -> str | None:
    """The alias the operator chose, else the first local one where `model` has rows."""
    if hasattr(request, "_cleave_alias"):
        return request._cleave_alias
    wanted = request.GET.get(ALIAS_PARAM)
    if not wanted and "_changelist_filters" in request.GET:
        wanted = parse_qs(request.GET["_changelist_filters"]).get(ALIAS_PARAM, [None])[0]
    known = dict(_aliases())
    if wanted in known:
        return wanted
    chosen = getattr(request, "_cleave_default_aliases", None)
    if chosen is None:
        chosen = request._cleave_default_aliases = {}
    if model not in chosen:
        chosen[model] = _first_alias_with_rows(model)
    return chosen[model]


def _first_alias_with_rows(model: type[models.Model]) -> str | None:
    aliases = [alias for alias, _label in _aliases()]
    for alias in aliases:
        try:
            if model._default_manager.using(alias).exists():
                return alias
        except DatabaseError:  # an alias that is down shows its own error when chosen
            continue
    return aliases[0] if aliases else None


class ContextFilter(admin.SimpleListFilter):
    title = "context"
    parameter_name = ALIAS_PARAM

    def __init__(self, request, params, model, model_admin):
        super().__init__(request, params, model, model_admin)
        # the alias the list shows, chosen or not, is the one marked selected
        self.current = _alias_from_request(request, model)

    def lookups(self, request, model_admin):
        return _aliases()

    def choices(self, changelist):
        for alias, label in self.lookup_choices:
            yield {
                "selected": self.current == alias,
                "query_string": changelist.get_query_string({self.parameter_name: alias}),
                "display": label,
            }

    def queryset(self, request, queryset):
        return queryset  # the ModelAdmin already chose the alias


class PerAliasAdmin(admin.ModelAdmin):
    """A ModelAdmin for a platform table that lives in every context alias."""

    def get_queryset(self, request):
        return super().get_queryset(request).using(_alias_from_request(request, self.model))

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


class OperatorActionsMixin:
    """Read-only rows whose changelist still offers actions (to superusers)."""

    def has_change_permission(self, request, obj=None) -> bool:
        # actions need change permission; the detail form stays read-only
        return request.user.is_superuser and obj is None


@admin.register(OutboxEvent)
class OutboxEventAdmin(OperatorActionsMixin, PerAliasAdmin):
    list_display = ("occurred_at", "type", "source", "status", "attempts", "correlation_id", "id")
    list_filter = (ContextFilter, "status", "type", "occurred_at")
    search_fields = ("id", "type", "correlation_id", "causation_id")
    readonly_fields = [f.name for f in OutboxEvent._meta.fields]
    date_hierarchy = None
    actions = ("redeliver",)

    @admin.action(
        description="Deliver the selected events again (subscribers that applied them skip them)",
        permissions=["change"],
    )
    def redeliver(self, request, queryset):
        alias = queryset.db
        ids = list(queryset.values_list("id", flat=True))
        queryset.update(status=OutboxEvent.Status.PENDING)
        get_transport().committed(alias, ids)
        messages.info(request, f"Handed {len(ids)} event(s) of {alias} to the transport again.")


@admin.register(InboxRecord)
class InboxRecordAdmin(PerAliasAdmin):
    list_display = ("processed_at", "event_type", "source", "handler", "event_id")
    list_filter = (ContextFilter, "event_type", "source", "processed_at")
    search_fields = ("event_id", "handler")


@admin.register(Delivery)
class DeliveryAdmin(OperatorActionsMixin, PerAliasAdmin):
    list_display = (
        "updated_at",
        "event_type",
        "handler",
        "status",
        "attempts",
        "next_attempt_at",
        "event_id",
    )
    list_filter = (ContextFilter, "status", "event_type", "source", "updated_at")
    search_fields = ("event_id", "handler", "last_error")
    readonly_fields = [f.name for f in Delivery._meta.fields]
    actions = ("retry_now",)

    @admin.action(
        description="Attempt the selected retrying deliveries now", permissions=["change"]
    )
    def retry_now(self, request, queryset):
        retrying = queryset.filter(status=Delivery.Status.RETRYING)
        retrying.update(next_attempt_at=timezone.now())  # due now, wherever it runs
        due = list(retrying)
        get_transport().redrive(due)
        messages.info(request, f"Attempting {len(due)} delivery(ies) of {queryset.db} now.")


@admin.register(DeadLetter)
class DeadLetterAdmin(OperatorActionsMixin, PerAliasAdmin):
    list_display = ("dead_at", "event_type", "handler", "reason", "status", "attempts", "id")
    list_filter = (ContextFilter, "status", "reason", "event_type", "source", "dead_at")
    search_fields = ("id", "event_id", "handler", "correlation_id", "error")
    readonly_fields = [f.name for f in DeadLetter._meta.fields]
    actions = ("redrive",)

    @admin.action(description="Redrive the selected dead letters", permissions=["change"])
    def redrive(self, request, queryset):
        alias = queryset.db
        deliveries = delivery.prepare_redrive(alias, list(queryset))
        get_transport().redrive(deliveries)
        skipped = queryset.count() - len(deliveries)
        messages.info(
            request,
            f"Redrove {len(deliveries)} dead letter(s) of {alias}"
            + (f"; {skipped} skipped (not dead, or malformed)." if skipped else "."),
        )


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
        "idempotency_key",
        "result",
        "error",
    )
    readonly_fields = fields
    ordering = ("id",)
    verbose_name_plural = "step timeline"

    def get_queryset(self, request):
        return super().get_queryset(request).using(_alias_from_request(request, SagaInstance))

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(SagaInstance)
class SagaInstanceAdmin(PerAliasAdmin):
    """Sagas with their step timeline; actions resume, retry and compensate (superusers)."""

    list_display = (
        "created_at",
        "saga_type",
        "state",
        "current_step",
        "failure_reason",
        "heartbeat_at",
        "wake_at",
        "last_error",
        "id",
    )
    list_filter = (ContextFilter, "state", "saga_type", "created_at")
    search_fields = ("id", "correlation_id")
    readonly_fields = [f.name for f in SagaInstance._meta.fields]
    inlines = (SagaStepInline,)
    actions = ("resume_sagas", "retry_sagas", "compensate_sagas")

    def has_change_permission(self, request, obj=None) -> bool:
        # the actions need change permission; the detail form stays read-only
        return request.user.is_superuser and obj is None

    def _operate(self, request, queryset, operation, verb: str) -> None:
        alias = queryset.db
        for saga in queryset:
            try:
                result = operation(sagas, alias, saga)
            except Exception as exc:  # one saga's trouble must not hide the others'
                messages.error(request, f"Saga {saga.id}: {type(exc).__name__}: {exc}")
                continue
            reason = f" ({result.failure_reason})" if result.failure_reason else ""
            messages.info(request, f"{verb} saga {saga.id}: now {result.state}{reason}.")

    @admin.action(description="Resume the selected sagas (expired lease)", permissions=["change"])
    def resume_sagas(self, request, queryset):
        self._operate(
            request, queryset, lambda sagas, alias, saga: sagas.run(alias, saga.id), "Resumed"
        )

    @admin.action(
        description="Retry the compensation of the selected failed sagas", permissions=["change"]
    )
    def retry_sagas(self, request, queryset):
        failed = queryset.filter(
            state__in=(SagaInstance.State.FAILED, SagaInstance.State.COMPENSATING)
        )
        skipped = queryset.count() - failed.count()
        if skipped:
            messages.warning(request, f"Skipped {skipped} saga(s) that are not failed.")
        self._operate(
            request, failed, lambda sagas, alias, saga: sagas.retry(alias, saga.id), "Retried"
        )

    @admin.action(
        description="Compensate the selected sagas (cancel running, refund completed)",
        permissions=["change"],
    )
    def compensate_sagas(self, request, queryset):
        self._operate(
            request,
            queryset.exclude(state=SagaInstance.State.COMPENSATED),
            lambda sagas, alias, saga: sagas.compensate(alias, saga.id),
            "Compensated",
        )


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
