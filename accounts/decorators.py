"""Access checks for API views, sync or async, answering JSON instead of redirects."""

from __future__ import annotations

import functools
from collections.abc import Callable

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.conf import settings
from django.http import HttpRequest

from .http import json_error


def unauthenticated_response():
    """Return the 401 JSON every API answers to a request without credentials."""
    response = json_error(
        401,
        "not_authenticated",
        "Log in or send an API token as 'Authorization: Bearer <token>'.",
    )
    response["WWW-Authenticate"] = "Bearer"
    return response


def permission_denied_response(perm: str):
    """Return the 403 JSON every API answers to a user without `perm`."""
    return json_error(403, "permission_denied", f"This needs the '{perm}' permission.")


def api_login_required(view: Callable | None = None, *, public_setting: str = ""):
    """Require a session or token user; `public_setting` names a setting that opens the view."""

    def decorate(view: Callable) -> Callable:
        def is_public() -> bool:
            return bool(public_setting) and bool(getattr(settings, public_setting, False))

        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args, **kwargs):
                user = await request.auser()
                if not user.is_authenticated and not is_public():
                    return unauthenticated_response()
                return await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated and not is_public():
                return unauthenticated_response()
            return view(request, *args, **kwargs)

        return wrapper

    return decorate(view) if view is not None else decorate


def api_permission_required(perm: str) -> Callable:
    """Require an authenticated user holding `perm` (e.g. 'rover.add_telemetryframe')."""

    def decorate(view: Callable) -> Callable:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def async_wrapper(request: HttpRequest, *args, **kwargs):
                user = await request.auser()
                if not user.is_authenticated:
                    return unauthenticated_response()
                if not await sync_to_async(user.has_perm)(perm):
                    return permission_denied_response(perm)
                return await view(request, *args, **kwargs)

            return async_wrapper

        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args, **kwargs):
            if not request.user.is_authenticated:
                return unauthenticated_response()
            if not request.user.has_perm(perm):
                return permission_denied_response(perm)
            return view(request, *args, **kwargs)

        return wrapper

    return decorate
