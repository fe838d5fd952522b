"""Content-Security-Policy for every HTML page.

The dashboard runs only same-origin ES modules and stylesheets: no inline script,
no inline style element, no CDN. uPlot positions its elements through the CSSOM
(`element.style.left = ...`), which `style-src 'self'` allows; only `style`
attributes written in markup and `<style>` elements would need 'unsafe-inline'.
Images are same-origin files, thumbnails, and blob: URLs of downloaded images.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.utils.deprecation import MiddlewareMixin

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


class ContentSecurityPolicyMiddleware(MiddlewareMixin):
    """Add the policy to every HTML response that does not set its own.

    MiddlewareMixin makes it sync and async capable, so async views (SSE, image
    streams) stay on the event loop.
    """

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        content_type = response.get("Content-Type", "")
        if content_type.startswith("text/html") and "Content-Security-Policy" not in response:
            response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response
