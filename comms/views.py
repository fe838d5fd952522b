"""History API of the team rooms: the same access rules as the socket."""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse

from accounts.decorators import api_login_required
from accounts.http import api_methods, json_error
from mission_control.parsing import INT64_MAX, BadParameter, bad_parameter_response, query_int

from .events import message_json
from .selectors import (
    HISTORY_LIMIT,
    HISTORY_MAX_LIMIT,
    message_history,
    team_get,
    team_user_can_join,
    user_teams,
)


@api_methods("GET", "HEAD")
@api_login_required
def team_list(request: HttpRequest) -> JsonResponse:
    """Return the user's teams (the dashboard's room tabs)."""
    teams = [
        {
            "slug": team.slug,
            "name": team.name,
            "description": team.description,
            "socket": f"/ws/comms/{team.slug}/",
        }
        for team in user_teams(user=request.user)
    ]
    return JsonResponse({"teams": teams})


@api_methods("GET", "HEAD")
@api_login_required
def team_messages(request: HttpRequest, slug: str) -> JsonResponse:
    """Return a page of a room's messages, oldest first: `?before=<id>&limit=<n>`."""
    team = team_get(slug=slug)
    if team is None:
        return json_error(404, "not_found", f"No team '{slug}'.")
    if not team_user_can_join(team=team, user=request.user):
        return json_error(403, "not_a_member", f"You are not a member of '{slug}'.")
    try:
        before = query_int(request.GET, "before", minimum=1, maximum=INT64_MAX)
        limit = query_int(request.GET, "limit", minimum=1, maximum=HISTORY_MAX_LIMIT)
    except BadParameter as exc:
        return bad_parameter_response(exc)
    messages, has_more = message_history(team=team, before=before, limit=limit or HISTORY_LIMIT)
    return JsonResponse(
        {
            "team": team.slug,
            "messages": [message_json(m, team_slug=team.slug) for m in messages],
            "has_more": has_more,
        }
    )
