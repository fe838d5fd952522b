"""Root URL map: each app owns its own URLs."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest, HttpResponseRedirect
from django.templatetags.static import static
from django.urls import include, path

from mission_control.health import healthz, readyz
from streams.views import metrics


def favicon(request: HttpRequest) -> HttpResponseRedirect:
    """Send /favicon.ico (asked for by clients that ignore <link rel=icon>) to the icon."""
    return HttpResponseRedirect(static("favicon.svg"))


# A database outage answers 503 + Retry-After (JSON on the API), not Django's HTML 500.
handler500 = "mission_control.database_outage.server_error"
# An unparsable body (multipart without a boundary...), a path no route matches: JSON on the API.
handler400 = "accounts.http.bad_request"
handler404 = "accounts.http.not_found"

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("accounts.urls")),
    path("metrics", metrics, name="metrics"),
    path("healthz", healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
    path("favicon.ico", favicon, name="favicon"),
    path("", include("rover.urls")),
    path("", include("comms.urls")),
]
