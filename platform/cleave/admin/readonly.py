"""
A ModelAdmin for rows the domain writes (event handlers, the platform's
tables): operators read them and act on them through actions, never add,
change or delete them through a form.
"""

from __future__ import annotations

from django.contrib import admin


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
