"""The mission-control dashboard page and the rover list it picks from."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.decorators import api_login_required

from ..selectors.rovers import rover_choices

# A rover silent for this long is shown as "link lost", its values greyed.
STALE_AFTER_SECONDS = 5


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
    }
    return render(request, "dashboard.html", {"config": config})


@require_GET
@api_login_required
def rover_list(request: HttpRequest) -> JsonResponse:
    """Return every rover (the dashboard's rover selector)."""
    return JsonResponse({"rovers": rover_choices()})
