"""
Admin actions on one record's page, and actions that ask first.

`ObjectActionsMixin` puts some of a ModelAdmin's list actions on the record's
page as buttons (`object_actions`: action name → button label). A button posts
to `<pk>/do/<action>/`, which runs the same action function on that one record
and comes back to its page: the same code, and the same permission check (an
action the operator is not offered on the list is refused here too, 403).

An action that should be confirmed (a refund) answers `confirmation(...)`
until the operator has confirmed, as Django's delete does: an intermediate page
naming the records, whose form posts the same request again with `post=yes`
(`confirmed(request)`), from the list as from a record's page.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.admin import helpers
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponseNotAllowed, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html


def confirmed(request: HttpRequest) -> bool:
    """Whether the operator confirmed on the intermediate page."""
    return request.method == "POST" and request.POST.get("post") == "yes"


def confirmation(
    request: HttpRequest,
    model_admin: Any,
    queryset: Any,
    *,
    action: str,
    title: str,
    question: str,
    consequences: list[str] | None = None,
    button: str = "Yes, I'm sure",
) -> TemplateResponse:
    """The page that asks before `action` runs on `queryset`; its form posts the request again."""
    opts = model_admin.opts
    objects = [
        {
            "text": str(obj),
            "value": model_admin.selection_value(obj),
            "url": reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[quote(obj.pk)])
            + model_admin.object_query(obj),
        }
        for obj in queryset
    ]
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "subtitle": None,
        "question": question,
        "consequences": consequences or [],
        "button": button,
        "objects": objects,
        "action": action,
        "opts": opts,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "form_url": request.get_full_path(),
        "cancel_url": getattr(request, "_cleave_return_to", None) or request.get_full_path(),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/cleave/confirm_action.html", context)


class ObjectActionsMixin:
    """A ModelAdmin whose record pages offer some of its actions as buttons."""

    object_actions: dict[str, str] = {}
    change_form_template = "admin/cleave/change_form_with_actions.html"

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        return [
            path(
                "<path:object_id>/do/<str:action>/",
                self.admin_site.admin_view(self.object_action_view),
                name="{}_{}_do".format(*info),
            ),
            *super().get_urls(),
        ]

    # --- what a subclass may refine --------------------------------------------------------------

    def object_action_applies(self, obj, action: str) -> bool:
        """Whether `obj`'s page shows the button for `action` (no refund of a cancelled order)."""
        return True

    def selection_value(self, obj) -> str:
        """What an action's checkbox posts for `obj`."""
        return str(obj.pk)

    def object_query(self, obj) -> str:
        """The query string a link to `obj`'s page needs (its alias, for a platform table)."""
        return ""

    def object_action_rows(self, request, obj):
        """The rows an action run from `obj`'s page receives: `obj` alone."""
        return self.model._default_manager.using(obj._state.db).filter(pk=obj.pk)

    # --- the buttons and their view -----------------------------------------------------------

    def action_checkbox(self, obj):
        attrs = {
            "class": "action-select",
            "aria-label": format_html("Select this object for an action - {}", str(obj)),
        }
        checkbox = forms.CheckboxInput(attrs, lambda value: False)
        return checkbox.render(helpers.ACTION_CHECKBOX_NAME, self.selection_value(obj))

    def change_url(self, obj) -> str:
        opts = self.opts
        url = reverse(
            f"admin:{opts.app_label}_{opts.model_name}_change",
            args=[quote(obj.pk)],
            current_app=self.admin_site.name,
        )
        return url + self.object_query(obj)

    def offered_object_actions(self, request, obj) -> list[dict[str, str]]:
        if obj is None:
            return []
        offered = self.get_actions(request)
        opts = self.opts
        return [
            {
                "name": name,
                "label": label,
                "description": str(offered[name][2]),
                "url": reverse(
                    f"admin:{opts.app_label}_{opts.model_name}_do",
                    args=[quote(obj.pk), name],
                    current_app=self.admin_site.name,
                )
                + self.object_query(obj),
            }
            for name, label in self.object_actions.items()
            if name in offered and self.object_action_applies(obj, name)
        ]

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["object_actions"] = self.offered_object_actions(request, obj)
        return super().render_change_form(
            request, context, add=add, change=change, form_url=form_url, obj=obj
        )

    def object_action_view(self, request, object_id: str, action: str):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        offered = self.get_actions(request)  # only what this operator may do
        if action not in self.object_actions or action not in offered:
            raise PermissionDenied
        obj = self.get_object(request, unquote(object_id))
        if obj is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        back = self.change_url(obj)
        request._cleave_return_to = back
        response = offered[action][0](self, request, self.object_action_rows(request, obj))
        if isinstance(response, HttpResponseBase):
            return response
        return HttpResponseRedirect(back)
