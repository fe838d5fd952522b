"""The mission-control dashboard page and the rover list it picks from."""

from __future__ import annotations

import time

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse

from accounts.decorators import api_login_required
from accounts.http import api_methods

from ..models import Camera, Rover
from ..selectors.rovers import rover_choices

# The staleness limit of a rover the page knows nothing about (each rover has its own).
STALE_AFTER_SECONDS = Rover._meta.get_field("stale_after_seconds").default


@login_required
def dashboard(request: HttpRequest) -> HttpResponse:
    """Render the dashboard shell; live data arrives over SSE and WebSockets.

    The page's configuration travels as JSON (`json_script`, not executable), so
    the Content-Security-Policy needs no inline script.
    """
    rovers = rover_choices()
    slugs = [rover["slug"] for rover in rovers]
    wanted = request.GET.get("rover") or settings.DEFAULT_ROVER_SLUG
    current = wanted if wanted in slugs else (slugs[0] if slugs else None)
    config = {
        "user": {"id": request.user.pk, "username": request.user.get_username()},
        "rovers": rovers,
        "rover": current,
        "canAcknowledge": request.user.has_perm("rover.change_alarm"),
        "staleAfterSeconds": STALE_AFTER_SECONDS,
        "cameras": dict(Camera.choices),
        # A first reading of the server's clock: frame ages are measured on it.
        "serverTime": round(time.time() * 1000),
        "teamHelp": {
            "adminUrl": reverse("admin:comms_team_changelist")
            if request.user.has_perm("comms.change_team")
            else None
        },
    }
    return render(request, "dashboard.html", {"config": config})


@api_methods("GET", "HEAD")
@api_login_required
def rover_list(request: HttpRequest) -> JsonResponse:
    """Return every rover (the dashboard's rover selector)."""
    return JsonResponse({"rovers": rover_choices()})
