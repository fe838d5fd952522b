"""What a client locked out by django-axes (too many failed logins) gets."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Answer 429 with Retry-After and a page saying when to try again (AXES_LOCKOUT_CALLABLE).

    Takes no named arguments after the request on purpose: django-axes 8.3.1 calls it
    with (request, original_response, credentials) on its sync path but with
    (request, credentials, None) on its async one, which uvicorn and daphne take
    (jazzband/django-axes#1494, open). A callable that read `credentials` there would
    answer a locked-out login with a 500 (accounts/tests/test_login_lockout_asgi.py).
    """
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    response = render(
        request,
        "accounts/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": math.ceil(seconds / 60)},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
