"""The Prometheus scrape endpoint."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from accounts.decorators import api_permission_required


@api_permission_required("rover.view_telemetryframe")
def metrics(request: HttpRequest) -> HttpResponse:
    """Return this worker's metrics in the Prometheus text format."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)
