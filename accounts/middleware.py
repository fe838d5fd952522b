"""Accept `Authorization: Bearer <token>` on HTTP requests."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from .http import json_error
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
    return json_error(401, "invalid_token", "The API token is unknown or revoked.")


class BearerTokenMiddleware:
    """Authenticate by API token when the request carries one; reject bad tokens."""

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
            user = token_user(raw)
            if user is None:
                return _rejected()
            _apply(request, user)
        return self.get_response(request)

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        raw = _bearer(request)
        if raw is not None:
            user = await sync_to_async(token_user)(raw)
            if user is None:
                return _rejected()
            _apply(request, user)
        return await self.get_response(request)
