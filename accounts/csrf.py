"""CSRF failures: JSON on the API (401 for anonymous writes), Django's page elsewhere."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.csrf import csrf_failure as html_csrf_failure

from .decorators import unauthenticated_response
from .http import json_error
from .paths import token_path


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Answer a request that failed the CSRF check (settings.CSRF_FAILURE_VIEW).

    An anonymous write to the API lacks credentials, not a CSRF token: it gets the
    same 401 JSON as an anonymous read. A logged-in browser session that forgot the
    token gets 403 JSON naming the reason. Session pages keep Django's HTML page.
    """
    if not token_path(request.path_info):
        return html_csrf_failure(request, reason=reason)
    if not request.user.is_authenticated:
        return unauthenticated_response()
    return json_error(
        403,
        "csrf_failed",
        f"CSRF check failed ({reason}): send the X-CSRFToken header, or use an API token.",
    )
