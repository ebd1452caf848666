"""
DRF permissions: a customer's request (`IsCustomer`), and a service's or an
operator's (`ServicePermission`: the view's service permission, or the Django
model permission an operator holds).
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions

from cleave.core.declarations import Operation

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


def view_operations(view: Any) -> tuple[Operation, ...]:
    """The operations a view serves, as it names them (`operation` or `operations`)."""
    several = getattr(view, "operations", None)
    if several:
        return tuple(several)
    one = getattr(view, "operation", None)
    return (one,) if one is not None else ()


class ServicePermission(permissions.BasePermission):
    """
    The request carries a service token holding the permission of the
    operation the view serves for its method.

    A view names the operation(s) of its context's contract it serves
    (`operation = inventory.RESERVATION_COMMIT`, or `operations = (...)` for a
    view serving several methods); the permission is the operation's, declared
    once in the contract. A method the view serves no operation for needs the
    last one's permission (DRF then answers 405).

    Operators: with `staff_permission = "<app>.view_<model>"` a staff session
    from the admin is admitted to reads too, if the operator holds that Django
    model permission, as the admin would ask for the same rows. The staff flag
    alone opens nothing; a superuser holds every permission.
    """

    message = "A service token with the required permission is required."

    @staticmethod
    def requirement(view, method: str) -> tuple[str, str | None]:
        """
        The permission a service token needs for `method` on `view`, and the
        Django permission that admits an operator instead (None: none does).
        """
        operations = view_operations(view)
        if not operations:
            raise NotImplementedError(
                f"{type(view).__name__} must name the operation it serves (`operation = ...`)"
            )
        method = method.upper()
        wanted = "GET" if method in ("HEAD", "OPTIONS") else method
        served = [operation for operation in operations if operation.method == wanted]
        operation = served[0] if served else operations[-1]
        if operation.permission is None:
            raise NotImplementedError(
                f"{type(view).__name__} serves the public {operation.qualname}: use AllowAny"
            )
        reading = method in permissions.SAFE_METHODS
        staff = getattr(view, "staff_permission", None) if reading else None
        return operation.permission, staff

    def has_permission(self, request, view) -> bool:
        required, staff_permission = self.requirement(view, request.method)
        user = request.user
        if getattr(user, "is_service", False):
            return user.has(required)
        return bool(staff_permission and _is_staff(user) and user.has_perm(staff_permission))
