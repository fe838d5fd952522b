"""Content-Security-Policy for every HTML page.

The dashboard runs only same-origin ES modules and stylesheets: no inline script,
no inline style element, no CDN. uPlot positions its elements through the CSSOM
(`element.style.left = ...`), which `style-src 'self'` allows; only `style`
attributes written in markup and `<style>` elements would need 'unsafe-inline'.
Images are same-origin files, thumbnails, and blob: URLs of downloaded images.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob: data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)


class ContentSecurityPolicyMiddleware:
    """Add the policy to every HTML response that does not set its own.

    Sync-only on purpose (Django's `sync_capable`/`async_capable` flags). Under
    ASGI Django runs each `MiddlewareMixin` hook (`process_request`,
    `process_response`) of an async chain through its own `sync_to_async`
    thread hop: about 13 per request for Django's middlewares above this one.
    A sync-only middleware makes Django run every sync-capable middleware above
    it in sync mode instead, all in one visit to the request's thread, and hand
    the rest back to the event loop once (`async_to_sync`): the views below,
    async ones included (SSE, image streams), still run on the event loop, and
    streamed bodies are sent from it. bench/scaleout.py's downloads measured the
    difference (README, "Scale-out and download benchmark").
    """

    sync_capable = True
    async_capable = False

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
