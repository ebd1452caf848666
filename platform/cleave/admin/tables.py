"""
Operator views of the platform's tables: outbox, inbox, deliveries, dead
letters, saga instances with their step timeline; and the journal of
context moves (`manage.py move_context`).

Each list opens on every context that has rows, newest first, with a
*context* filter to narrow it to one (`cleave.admin.aliases`); each record's
page offers its actions as buttons (deliver again, attempt now, redrive;
resume, retry, compensate). The actions are for superusers; every other
operator with a view permission sees, and cannot act.

Records link to each other (`cleave.admin.links`): an outbox event to the
deliveries and dead letters it caused (in the subscribers' aliases, so the
lists span every context), a delivery, dead letter or inbox record back to
its event (in the alias of the context that published it, its `source`), and
a saga to its subject, which its definition declares (`subject_key`,
`subject_model`: a checkout's order); the saga list searches by it too.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.text import Truncator

from cleave import sagas
from cleave.admin.aliases import (
    ContextFilter,
    PerAliasAdmin,
    ValuesAcrossContexts,
    per_alias,
)
from cleave.admin.display import EMPTY, milliseconds, timestamp
from cleave.admin.links import alias_of, link, list_link
from cleave.admin.readonly import ReadOnlyAdmin
from cleave.core.moves import ContextMove
from cleave.messaging import delivery
from cleave.messaging.models import DeadLetter, Delivery, InboxRecord, OutboxEvent
from cleave.messaging.transports import get_transport
from cleave.sagas.models import SagaInstance, SagaStepLog


class OperatorActionsMixin:
    """Read-only rows whose lists and pages still offer actions (to superusers)."""

    def has_change_permission(self, request, obj=None) -> bool:
        # actions need change permission; the detail form stays read-only
        return request.user.is_superuser and obj is None


class EventLinkMixin:
    """A row about one event (`event_id`) links to it, in its publisher's alias (`source`)."""

    @admin.display(description="event id", ordering="event_id")
    def event(self, row) -> str:
        return link("cleave.outboxevent", row.event_id, context=alias_of(row.source))


def fields_of(model, **shown_as: str) -> list[str]:
    """A model's field names in order, some shown by another attribute (a link)."""
    return [shown_as.get(f.name, f.name) for f in model._meta.fields]


@admin.register(OutboxEvent)
class OutboxEventAdmin(OperatorActionsMixin, PerAliasAdmin):
    list_display = (
        "occurred_at",
        "type",
        "in_context",
        "status",
        "attempts",
        "correlation_id",
        "id",
    )
    list_filter = (ContextFilter, "status", ("type", ValuesAcrossContexts), "occurred_at")
    search_fields = ("id", "type", "correlation_id", "causation_id")
    ordering = ("-occurred_at", "-id")
    readonly_fields = [*(f.name for f in OutboxEvent._meta.fields), "caused"]
    actions = ("redeliver",)
    object_actions = {"redeliver": "Deliver again"}

    @admin.display(description="caused")
    def caused(self, event: OutboxEvent) -> str:
        """Its deliveries and dead letters: in the subscribers' aliases, so in every context."""
        return format_html(
            "{} · {}",
            list_link("cleave.delivery", "Deliveries of this event", event_id=event.id),
            list_link("cleave.deadletter", "Dead letters of this event", event_id=event.id),
        )

    @admin.action(
        description="Deliver the selected events again (subscribers that applied them skip them)",
        permissions=["change"],
    )
    def redeliver(self, request, queryset):
        for alias, rows in per_alias(queryset):
            ids = list(rows.values_list("id", flat=True))
            OutboxEvent.objects.using(alias).filter(pk__in=ids).update(
                status=OutboxEvent.Status.PENDING
            )
            get_transport().committed(alias, ids)
            messages.info(request, f"Handed {len(ids)} event(s) of {alias} to the transport again.")


@admin.register(InboxRecord)
class InboxRecordAdmin(EventLinkMixin, PerAliasAdmin):
    list_display = ("processed_at", "event_type", "in_context", "source", "handler", "event")
    list_filter = (
        ContextFilter,
        ("event_type", ValuesAcrossContexts),
        ("source", ValuesAcrossContexts),
        "processed_at",
    )
    search_fields = ("event_id", "handler")
    ordering = ("-processed_at", "-id")
    readonly_fields = fields = fields_of(InboxRecord, event_id="event")


@admin.register(Delivery)
class DeliveryAdmin(EventLinkMixin, OperatorActionsMixin, PerAliasAdmin):
    list_display = (
        "updated_at",
        "event_type",
        "in_context",
        "handler",
        "status",
        "attempts",
        "next_attempt_at",
        "event",
    )
    list_filter = (
        ContextFilter,
        "status",
        ("event_type", ValuesAcrossContexts),
        ("source", ValuesAcrossContexts),
        "updated_at",
    )
    search_fields = ("event_id", "handler", "last_error")
    ordering = ("-updated_at", "-id")
    readonly_fields = fields = fields_of(Delivery, event_id="event")
    actions = ("retry_now",)
    object_actions = {"retry_now": "Attempt now"}

    def object_action_applies(self, obj, action: str) -> bool:
        return obj.status == Delivery.Status.RETRYING

    @admin.action(
        description="Attempt the selected retrying deliveries now", permissions=["change"]
    )
    def retry_now(self, request, queryset):
        for alias, rows in per_alias(queryset):
            retrying = rows.filter(status=Delivery.Status.RETRYING)
            retrying.update(next_attempt_at=timezone.now())  # due now, wherever it runs
            due = list(retrying)
            get_transport().redrive(due)
            messages.info(request, f"Attempting {len(due)} delivery(ies) of {alias} now.")


@admin.register(DeadLetter)
class DeadLetterAdmin(EventLinkMixin, OperatorActionsMixin, PerAliasAdmin):
    list_display = (
        "dead_at",
        "event_type",
        "in_context",
        "handler",
        "reason",
        "status",
        "attempts",
        "event",
        "id",
    )
    list_filter = (
        ContextFilter,
        "status",
        "reason",
        ("event_type", ValuesAcrossContexts),
        ("source", ValuesAcrossContexts),
        "dead_at",
    )
    search_fields = ("id", "event_id", "handler", "correlation_id", "error")
    ordering = ("-dead_at", "-id")
    readonly_fields = fields = fields_of(DeadLetter, event_id="event")
    actions = ("redrive",)
    object_actions = {"redrive": "Redrive"}

    def object_action_applies(self, obj, action: str) -> bool:
        return obj.status == DeadLetter.Status.DEAD

    @admin.action(description="Redrive the selected dead letters", permissions=["change"])
    def redrive(self, request, queryset):
        for alias, rows in per_alias(queryset):
            chosen = list(rows)
            deliveries = delivery.prepare_redrive(alias, chosen)
            get_transport().redrive(deliveries)
            skipped = len(chosen) - len(deliveries)
            messages.info(
                request,
                f"Redrove {len(deliveries)} dead letter(s) of {alias}"
                + (f"; {skipped} skipped (not dead, or malformed)." if skipped else "."),
            )


# --- sagas ---------------------------------------------------------------------------------------


def timeline(saga: SagaInstance) -> list[dict[str, Any]]:
    """The saga's step log as the page shows it: one row per attempt, details below it."""
    rows = []
    for log in SagaStepLog.objects.using(saga._state.db).filter(saga=saga).order_by("id"):
        succeeded = log.status == SagaStepLog.Status.SUCCEEDED
        rows.append(
            {
                "index": log.step_index,
                "step": log.step,
                "kind": log.kind,
                "attempt": log.attempt,
                "status": log.status,
                "started": timestamp(log.started_at),
                "duration": milliseconds(log.duration_ms),
                "key": log.idempotency_key,
                "result": json.dumps(log.result, sort_keys=True, default=str) if log.result else "",
                # a succeeded step's text is a note (done by the saga's first
                # transaction), not an error
                "error": "" if succeeded else log.error,
                "note": log.error if succeeded else "",
            }
        )
    return rows


def _definition(saga: SagaInstance) -> sagas.SagaDefinition | None:
    """The saga's definition; None for a type no longer (or not here) defined."""
    try:
        return sagas.get_definition(saga.saga_type)
    except LookupError:
        return None


@admin.register(SagaInstance)
class SagaInstanceAdmin(OperatorActionsMixin, PerAliasAdmin):
    """Sagas with their step timeline; resume, retry and compensate (superusers)."""

    change_form_template = "admin/cleave/sagainstance/change_form.html"
    list_display = (
        "created_at",
        "saga_type",
        "subject",
        "state",
        "current_step",
        "failure_reason",
        "heartbeat_at",
        "wake_at",
        "error",
        "in_context",
        "id",
    )
    list_filter = (
        ContextFilter,
        "state",
        ("saga_type", ValuesAcrossContexts),
        "failure_reason",
        "created_at",
    )
    ordering = ("-created_at", "-id")
    search_fields = ("id", "correlation_id")  # and the subjects' ids: get_search_fields
    readonly_fields = [*(f.name for f in SagaInstance._meta.fields), "subject", "records"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "id",
                    "saga_type",
                    "subject",
                    "records",
                    "context",
                    "state",
                    "current_step",
                    "failure_reason",
                )
            },
        ),
        (
            "Progress",
            {
                "fields": (
                    "created_at",
                    "updated_at",
                    "completed_at",
                    "deadline",
                    "wake_at",
                    "last_error",
                    "cancel_requested",
                    "lease_owner",
                    "lease_expires_at",
                    "heartbeat_at",
                )
            },
        ),
        ("Data", {"fields": ("correlation_id", "traceparent", "data")}),
    )
    actions = ("resume_sagas", "retry_sagas", "compensate_sagas")
    object_actions = {
        "resume_sagas": "Resume",
        "retry_sagas": "Retry the compensation",
        "compensate_sagas": "Compensate",
    }

    def object_action_applies(self, obj, action: str) -> bool:
        if action == "resume_sagas":
            return not obj.is_final
        if action == "retry_sagas":
            return obj.state in (SagaInstance.State.FAILED, SagaInstance.State.COMPENSATING)
        return obj.state != SagaInstance.State.COMPENSATED

    @admin.display(description="last error")
    def error(self, saga: SagaInstance) -> str:
        return Truncator(saga.last_error).chars(60) if saga.last_error else EMPTY

    @admin.display(description="subject")
    def subject(self, saga: SagaInstance) -> str:
        """What the saga is about (a checkout's order), as its definition declares it."""
        definition = _definition(saga)
        if definition is None:
            return EMPTY
        pk = definition.subject(saga.data)
        if pk is None or not definition.subject_model:
            return pk or EMPTY
        name = definition.subject_model.partition(".")[2]
        return link(definition.subject_model, pk, f"{name} {pk}")

    @admin.display(description="records")
    def records(self, saga: SagaInstance) -> str:
        """The other records the saga's data names (a checkout's payment), as links."""
        definition = _definition(saga)
        if definition is None:
            return EMPTY
        links = [
            link(model, pk, f"{model.partition('.')[2]} {pk}")
            for model, pk in definition.related(saga.data)
        ]
        return format_html_join(mark_safe("<br>"), "{}", ((one,) for one in links)) or EMPTY

    def get_search_fields(self, request) -> list[str]:
        """Also the key of the data that holds a saga's subject, for every saga defined here."""
        keys = sorted({d.subject_key for d in sagas.definitions() if d.subject_key})
        return [*super().get_search_fields(request), *(f"data__{key}" for key in keys)]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["timeline"] = timeline(obj)
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def _operate(self, request, rows, operation, verb: str) -> None:
        for alias, part in per_alias(rows):
            for saga in part:
                try:
                    result = operation(alias, saga)
                except Exception as exc:  # one saga's trouble must not hide the others'
                    messages.error(request, f"Saga {saga.id}: {type(exc).__name__}: {exc}")
                    continue
                reason = f" ({result.failure_reason})" if result.failure_reason else ""
                messages.info(request, f"{verb} saga {saga.id}: now {result.state}{reason}.")

    @admin.action(description="Resume the selected sagas (expired lease)", permissions=["change"])
    def resume_sagas(self, request, queryset):
        self._operate(request, queryset, lambda alias, saga: sagas.run(alias, saga.id), "Resumed")

    @admin.action(
        description="Retry the compensation of the selected failed sagas", permissions=["change"]
    )
    def retry_sagas(self, request, queryset):
        retryable = (SagaInstance.State.FAILED, SagaInstance.State.COMPENSATING)
        failed = queryset.filter(state__in=retryable)
        skipped = sum(part.exclude(state__in=retryable).count() for _, part in per_alias(queryset))
        if skipped:
            messages.warning(request, f"Skipped {skipped} saga(s) that are not failed.")
        self._operate(request, failed, lambda alias, saga: sagas.retry(alias, saga.id), "Retried")

    @admin.action(
        description="Compensate the selected sagas (cancel running, refund completed)",
        permissions=["change"],
    )
    def compensate_sagas(self, request, queryset):
        self._operate(
            request,
            queryset.exclude(state=SagaInstance.State.COMPENSATED),
            lambda alias, saga: sagas.compensate(alias, saga.id),
            "Compensated",
        )


@admin.register(ContextMove)
class ContextMoveAdmin(ReadOnlyAdmin):
    """Each `move_context` run: what moved where, how far it got, and the pause (in `default`)."""

    list_display = ("label", "state", "source", "target", "rows", "pause", "started_at")
    list_filter = ("label", "state")
    ordering = ("-started_at",)
    exclude = ("sealed_target",)  # the URL with its password, sealed: never shown

    @admin.display(description="pause", ordering="pause_seconds")
    def pause(self, move: ContextMove) -> str:
        return EMPTY if move.pause_seconds is None else f"{move.pause_seconds:.2f} s"
