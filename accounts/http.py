"""JSON error bodies shared by every API view; the API's 400, 404 and 405 answers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views import defaults

from .paths import token_path


def json_error(status: int, code: str, detail: str, **extra: Any) -> JsonResponse:
    """Return `{"error": code, "detail": detail, ...}` with the given status."""
    return JsonResponse({"error": code, "detail": detail, **extra}, status=status)


def unparsable_body_error(exc: Exception) -> JsonResponse | None:
    """Return the JSON answer to a body Django refused to parse, or None for other errors.

    These are what reading `request.POST` / `request.FILES` raises on a client's
    bad body: a multipart type without a usable boundary, too many fields or files,
    form fields past DATA_UPLOAD_MAX_MEMORY_SIZE.
    """
    if isinstance(exc, RequestDataTooBig):
        return json_error(413, "too_large", "The form fields are larger than this server accepts.")
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return json_error(400, "too_many_fields", "The form has more fields or files than allowed.")
    if isinstance(exc, MultiPartParserError):
        return json_error(
            400,
            "malformed_multipart",
            f"The multipart body cannot be parsed ({exc}); send multipart/form-data "
            "with its boundary in the Content-Type.",
        )
    return None


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: JSON on the API, Django's page elsewhere.

    A body that cannot be parsed can raise before any API view runs (the CSRF
    check of a session request reads `request.POST`); Django then answers through
    this handler. Without DEBUG only: with DEBUG, Django shows its technical page.
    """
    if token_path(request.path_info):
        response = unparsable_body_error(exception)
        if response is None and isinstance(exception, SuspiciousOperation):
            response = json_error(400, "bad_request", "The request was refused as malformed.")
        if response is None:
            response = json_error(400, "bad_request", "The request is malformed.")
        return response
    return defaults.bad_request(request, exception)


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: JSON on the API (a path no route matches), Django's page elsewhere."""
    if token_path(request.path_info):
        return json_error(404, "not_found", f"No API resource at {request.path_info!r}.")
    return defaults.page_not_found(request, exception)


def api_methods(*methods: str) -> Callable[[Callable], Callable]:
    """Answer other methods with 405 JSON and `Allow` (require_http_methods answers empty)."""
    allowed = ", ".join(methods)

    def refused() -> HttpResponse:
        response = json_error(405, "method_not_allowed", f"Use one of: {allowed}.")
        response["Allow"] = allowed
        return response

    def decorate(view: Callable) -> Callable:
        # A sync view stays sync: wrapping it in a coroutine would cost a thread hop.
        if not iscoroutinefunction(view):

            @functools.wraps(view)
            def sync_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
                if request.method not in methods:
                    return refused()
                return view(request, *args, **kwargs)

            return sync_wrapper

        @functools.wraps(view)
        async def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                return refused()
            return await view(request, *args, **kwargs)

        return wrapper

    return decorate
