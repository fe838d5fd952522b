"""Accept `Authorization: Bearer <token>` on the API's HTTP requests, and nowhere else.

A token authenticates a request (and exempts it from CSRF, which it cannot be
forged by) only on the API's paths (`accounts.paths.token_path`). Session pages,
the admin and the login forms refuse a request that carries one: otherwise a
token would skip the CSRF check there and, for a staff user, open the admin's
forms (a token could create a superuser through `/admin/auth/user/add/`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from .http import json_error
from .paths import token_path
from .services import token_user


def _bearer(request: HttpRequest) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def _apply(request: HttpRequest, user) -> None:
    request.user = user

    async def auser():
        return user

    request.auser = auser
    # A bearer token is not sent by browsers on their own, so CSRF cannot forge it.
    request._dont_enforce_csrf_checks = True


def _rejected() -> HttpResponse:
    response = json_error(401, "invalid_token", "The API token is unknown or revoked.")
    response["WWW-Authenticate"] = 'Bearer error="invalid_token"'
    return response


def _not_accepted() -> HttpResponse:
    return json_error(
        403,
        "token_not_accepted",
        "API tokens work on the API only (/api/, /stream/, /rovers/<slug>/telemetry/stream,"
        " /metrics); log in to use this page.",
    )


class BearerTokenMiddleware:
    """Authenticate API requests by token when they carry one; reject bad or misplaced tokens."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable) -> None:
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if iscoroutinefunction(self):
            return self.__acall__(request)
        raw = _bearer(request)
        if raw is not None:
            if not token_path(request.path_info):
                return _not_accepted()
            user = token_user(raw)
            if user is None:
                return _rejected()
            _apply(request, user)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        raw = _bearer(request)
        if raw is not None:
            if not token_path(request.path_info):
                return _not_accepted()
            user = await sync_to_async(token_user)(raw)
            if user is None:
                return _rejected()
            _apply(request, user)
        return await self.get_response(request)
