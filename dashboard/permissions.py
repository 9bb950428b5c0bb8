"""Who may use which dashboard view or action: one table, one decorator, enforced on the server.

Roles are the Django groups ``admins``, ``support`` and ``managers``; a superuser counts as an admin.
A user must also be active and ``is_staff``. Anonymous users are sent to the login page; a logged-in
user without the role gets 403.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse

ADMINS, SUPPORT, MANAGERS = "admins", "support", "managers"
ROLES = (ADMINS, SUPPORT, MANAGERS)
READERS = frozenset({ADMINS, SUPPORT, MANAGERS})
SUPPORT_DESK = frozenset({ADMINS, SUPPORT})
ADMIN_ONLY = frozenset({ADMINS})

# view/action name -> roles allowed. Every dashboard view is listed here; the decorator refuses
# names that are not, so a new view cannot be added without deciding who may use it.
VIEW_ROLES: dict[str, frozenset[str]] = {
    "overview": READERS,
    "deliveries": READERS,
    "deliveries_data": READERS,
    "deliveries_csv": READERS,
    "alerts": READERS,
    "alert_create": ADMIN_ONLY,
    "alert_delete": ADMIN_ONLY,
    "client_health": READERS,
    "devices": SUPPORT_DESK,
    "device_detail": SUPPORT_DESK,
    "device_deactivate": SUPPORT_DESK,
    "device_test_push": SUPPORT_DESK,
    "trace": SUPPORT_DESK,
    "feed": SUPPORT_DESK,
    "flags": ADMIN_ONLY,
    "flag_edit": ADMIN_ONLY,
}


def roles_of(user) -> frozenset[str]:
    """The dashboard roles a user holds (empty for anonymous, inactive or non-staff users)."""
    if not getattr(user, "is_authenticated", False) or not user.is_active or not user.is_staff:
        return frozenset()
    if user.is_superuser:
        return frozenset(ROLES)
    cached = getattr(user, "_dashboard_roles", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=ROLES).values_list("name", flat=True))
        user._dashboard_roles = cached
    return cached


def can(user, view_name: str) -> bool:
    return bool(roles_of(user) & VIEW_ROLES[view_name])


def allowed_views(user) -> frozenset[str]:
    """The names this user may use (templates show only these links and buttons)."""
    mine = roles_of(user)
    return frozenset(name for name, roles in VIEW_ROLES.items() if mine & roles)


def staff_view(view_name: str) -> Callable:
    """Decorate a view: login required, then the roles in ``VIEW_ROLES[view_name]``."""
    if view_name not in VIEW_ROLES:
        raise KeyError(f"{view_name} is not in dashboard.permissions.VIEW_ROLES")

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not can(request.user, view_name):
                raise PermissionDenied(f"{view_name} needs one of {sorted(VIEW_ROLES[view_name])}")
            return view(request, *args, **kwargs)

        wrapped.dashboard_view_name = view_name  # the permission-matrix test reads this
        return wrapped

    return decorate
