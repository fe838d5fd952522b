"""Accept `Authorization: Bearer <token>` on the API's HTTP requests, and nowhere else.

A token authenticates a request (and exempts it from CSRF, which it cannot be
forged by) only on the API's paths (`accounts.paths.token_path`). Session pages,
the admin and the login forms refuse a request that carries one: otherwise a
token would skip the CSRF check there and, for a staff user, open the admin's
forms (a token could create a superuser through `/admin/auth/user/add/`).

A GET or HEAD whose view is marked `checks_token_itself` is let through with
the token unchecked and the request anonymous: the view checks it in its own
query (`pending_token`, `token_checked`), so a download's access check is one
round trip to PostgreSQL instead of two. Until it does, the request is
anonymous, never the session's user nor the token's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

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


# Set on a view function by `checks_token_itself`; the request's token waits under PENDING.
CHECKS_TOKEN_ITSELF = "checks_token_itself"  # noqa: S105 - an attribute name
PENDING = "_pending_bearer_token"
# The methods a deferred check may serve: they change nothing, and CSRF never applies.
DEFERRABLE = frozenset({"GET", "HEAD"})


def checks_token_itself(view: Callable) -> Callable:
    """Mark a sync GET/HEAD view that checks the request's bearer token in its own query.

    The view must call `pending_token` and, with a token, `token_checked` before
    it serves anything: until then the request is anonymous.
    """
    setattr(view, CHECKS_TOKEN_ITSELF, True)
    return view


def pending_token(request: HttpRequest) -> str | None:
    """Return the bearer token left for the view to check (once), or None if there is none."""
    return request.__dict__.pop(PENDING, None)


def token_checked(request: HttpRequest, user) -> HttpResponse | None:
    """Finish what the middleware left: the 401 for no `user`, else None, the request now theirs."""
    if user is None:
        return _rejected()
    _apply(request, user)
    return None


def _left_to_view(request: HttpRequest, raw: str) -> bool:
    """Leave the token to a `checks_token_itself` view, if this request is for one."""
    if request.method not in DEFERRABLE:
        return False
    try:
        view = resolve(request.path_info, getattr(request, "urlconf", None)).func
    except Resolver404:
        return False
    if not getattr(view, CHECKS_TOKEN_ITSELF, False):
        return False
    request.__dict__[PENDING] = raw
    anonymous = AnonymousUser()
    request.user = anonymous

    async def auser():
        return anonymous

    request.auser = auser
    return True


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
            if _left_to_view(request, raw):
                return self.get_response(request)
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
            if _left_to_view(request, raw):
                return await self.get_response(request)
            user = await sync_to_async(token_user)(raw)
            if user is None:
                return _rejected()
            _apply(request, user)
        return await self.get_response(request)
