"""The mission-control dashboard page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the dashboard shell; live data arrives over SSE and WebSockets."""
    return render(request, "dashboard.html")
