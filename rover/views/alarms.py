"""Alarms for the dashboard: list a rover's alarms, acknowledge one."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse

from accounts.decorators import api_login_required, api_permission_required
from accounts.http import api_methods, json_error

from ..events import alarm_json
from ..selectors.alarms import alarm_get, alarm_list
from ..selectors.rovers import rover_get
from ..services.alarms import alarm_acknowledge

ALARMS_LIMIT = 200


@api_methods("GET", "HEAD")
@api_login_required
def rover_alarms(request: HttpRequest, slug: str) -> HttpResponse:
    """Return the rover's newest alarms (`?active=1`: only the active ones)."""
    rover = rover_get(slug=slug)
    if rover is None:
        return json_error(404, "not_found", f"No rover '{slug}'.")
    active = request.GET.get("active", "")
    if active not in ("", "0", "1", "true", "false"):
        return json_error(400, "bad_parameter", "'active' must be 1 or 0.", parameter="active")
    alarms = alarm_list(rover=rover, active_only=active in ("1", "true"), limit=ALARMS_LIMIT)
    items = [alarm_json(alarm, rover_slug=rover.slug) for alarm in alarms]
    return JsonResponse({"rover": rover.slug, "count": len(items), "alarms": items})


@api_methods("POST")
@api_permission_required("rover.change_alarm")
def alarm_acknowledge_view(request: HttpRequest, alarm_id: int) -> HttpResponse:
    """Acknowledge an alarm (idempotent); announce it on the live stream and in the room."""
    alarm = alarm_get(alarm_id=alarm_id)
    if alarm is None:
        return json_error(404, "not_found", f"No alarm {alarm_id}.")
    alarm, _changed = alarm_acknowledge(alarm=alarm, user=request.user)
    return JsonResponse(alarm_json(alarm))
