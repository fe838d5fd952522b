"""What a client locked out by django-axes (too many failed logins) gets."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def lockout_response(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """Answer 429 with Retry-After and a page saying when to try again (AXES_LOCKOUT_CALLABLE).

    django-axes passes (request, original_response, credentials) from sync code but
    (request, credentials) from async code; neither is needed here.
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
