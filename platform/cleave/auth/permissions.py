"""
DRF permissions: a customer's request (`IsCustomer`), and a service's or an
operator's (`ServicePermission`: the view's service permission, or the Django
model permission an operator holds).
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

# --- DRF permissions ---------------------------------------------------------------


class IsCustomer(permissions.BasePermission):
    """The request is made by an authenticated customer."""

    message = "A customer access token is required."

    def has_permission(self, request, view) -> bool:
        return bool(getattr(request.user, "is_customer", False))


def _is_staff(user: Any) -> bool:
    return bool(
        getattr(user, "is_authenticated", False)
        and getattr(user, "is_staff", False)
        and getattr(user, "is_active", True)
    )


class ServicePermission(permissions.BasePermission):
    """
    The request carries a service token holding the view's `required_permission`.

    Views set `required_permission = "inventory:write"`. A view whose reads
    and writes differ sets `read_permission` and `write_permission` instead:
    safe methods need the first, the others the second.

    Operators: with `staff_permission = "<app>.view_<model>"` a staff session
    from the admin is admitted too (to reads only, for a view with read and
    write permissions), if the operator holds that Django model permission,
    as the admin would ask for the same rows. The staff flag alone opens
    nothing; a superuser holds every permission.
    """

    message = "A service token with the required permission is required."

    @staticmethod
    def requirement(view, method: str) -> tuple[str, str | None]:
        """
        The permission a service token needs for `method` on `view`, and the
        Django permission that admits an operator instead (None: none does).
        """
        reading = method.upper() in permissions.SAFE_METHODS
        staff = getattr(view, "staff_permission", None)
        if getattr(view, "read_permission", None) and getattr(view, "write_permission", None):
            required = view.read_permission if reading else view.write_permission
            staff = staff if reading else None
        else:
            required = getattr(view, "required_permission", None)
        if not required:
            raise NotImplementedError(f"{type(view).__name__} must set .required_permission")
        return required, staff

    def has_permission(self, request, view) -> bool:
        required, staff_permission = self.requirement(view, request.method)
        user = request.user
        if getattr(user, "is_service", False):
            return user.has(required)
        return bool(staff_permission and _is_staff(user) and user.has_perm(staff_permission))
