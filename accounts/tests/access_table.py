"""Who may call which route: the table `test_access_matrix.py` checks against the product.

Callers: anonymous, a plain user, a team member, staff holding every view
permission but in no team, a superuser (all by session), a valid superuser token,
a bad token and a revoked token.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import SimpleUploadedFile

IDENTITIES = (
    "anonymous",
    "user",
    "member",
    "staff_viewer",
    "superuser",
    "superuser_token",
    "bad_token",
    "revoked_token",
)
SESSION = ("user", "member", "staff_viewer", "superuser")
TOKENS = ("superuser_token", "bad_token", "revoked_token")
# Staff who may look at everything and change nothing.
VIEW_PERMS = (
    "comms.view_message",
    "comms.view_team",
    "rover.view_rover",
    "rover.view_telemetryframe",
    "rover.view_roverimage",
    "rover.view_alarm",
    "auth.view_user",
)
TEAM = "ops"
ROVER = "curiosity"


# --- the table ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One request to a route and who may make it.

    access: `api` (any login), `api:<perm>`, `api_public`, `api_room` (members and
    staff allowed to read any room), `page` (login required), `page_public`,
    `admin` (staff), `admin:<perm>`. `ok` is the status an allowed caller gets.
    """

    method: str
    path: str
    access: str
    ok: int
    data: Callable[[str], Any] | None = None
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _frame(identity: str) -> dict[str, Any]:
    return {
        "seq": IDENTITIES.index(identity) + 1,
        "recorded_at": "2026-11-24T12:00:00+00:00",
        "battery_pct": 80.0,
        "signal_dbm": -90.0,
        "temp_internal_c": 15.0,
        "mode": "driving",
    }


def _image_form(identity: str) -> dict[str, Any]:
    # Different bytes per identity: the uplink answers a repeat with the stored image (200).
    data = png(colour=(200, IDENTITIES.index(identity) * 20, 40))
    return {"file": SimpleUploadedFile(f"{identity}.png", data, content_type="image/png")}


def _new_user_form(identity: str) -> dict[str, str]:
    return {
        "username": f"made-by-{identity}",
        "password1": "Xq-93-long!",
        "password2": "Xq-93-long!",
    }


TUS = {"Tus-Resumable": "1.0.0"}
# Feeds of a rover that does not exist: an allowed caller gets 404 instead of a
# stream that never ends, which proves it passed the access check.
NO_ROVER = {"DEFAULT_ROVER_SLUG": "no-such-rover"}

HTTP_ROUTES: dict[str, list[Case]] = {
    "": [Case("GET", "/", "page", 200)],
    "api/rovers": [Case("GET", "/api/rovers", "api", 200)],
    "stream/rover-telemetry": [
        Case("GET", "/stream/rover-telemetry", "api", 404, settings=NO_ROVER)
    ],
    "rovers/<slug:slug>/telemetry/stream": [
        Case("GET", "/rovers/no-such-rover/telemetry/stream", "api", 404)
    ],
    "api/rovers/<slug:slug>/telemetry": [
        Case("GET", f"/api/rovers/{ROVER}/telemetry", "api", 200),
        Case(
            "POST",
            f"/api/rovers/{ROVER}/telemetry",
            "api:rover.add_telemetryframe",
            201,
            data=_frame,
            content_type="application/json",
        ),
    ],
    "api/rovers/<slug:slug>/alarms": [Case("GET", f"/api/rovers/{ROVER}/alarms", "api", 200)],
    "api/alarms/<int:alarm_id>/acknowledge": [
        Case("POST", "/api/alarms/{alarm}/acknowledge", "api:rover.change_alarm", 200)
    ],
    "stream/rover-image": [Case("GET", "/stream/rover-image", "api", 200)],
    "api/rovers/<slug:slug>/images": [
        Case("GET", f"/api/rovers/{ROVER}/images", "api", 200),
        Case("POST", f"/api/rovers/{ROVER}/images", "api:rover.add_roverimage", 201, _image_form),
    ],
    "api/images/<int:image_id>/download": [Case("GET", "/api/images/{image}/download", "api", 200)],
    "api/images/<int:image_id>/thumbnail": [
        Case("GET", "/api/images/{image}/thumbnail", "api", 200)
    ],
    "api/rovers/<slug:slug>/uploads/": [
        Case("OPTIONS", f"/api/rovers/{ROVER}/uploads/", "api_public", 204),
        Case(
            "POST",
            f"/api/rovers/{ROVER}/uploads/",
            "api:rover.add_roverimage",
            201,
            headers={**TUS, "Upload-Length": "10"},
        ),
    ],
    "api/rovers/<slug:slug>/uploads/<str:upload_id>": [
        # Nobody's upload: an allowed caller learns only that it is not theirs.
        Case(
            "HEAD",
            f"/api/rovers/{ROVER}/uploads/00000000-0000-0000-0000-000000000000",
            "api:rover.add_roverimage",
            404,
            headers=TUS,
        ),
    ],
    "metrics": [Case("GET", "/metrics", "api:rover.view_telemetryframe", 200)],
    # Probes send no credentials; a token is refused there as on every page (403 JSON).
    "healthz": [Case("GET", "/healthz", "page_public", 200)],
    "readyz": [Case("GET", "/readyz", "page_public", 200)],
    # Clients that ignore <link rel=icon> ask here: sent to the static icon.
    "favicon.ico": [Case("GET", "/favicon.ico", "page_public", 302)],
    "api/teams": [Case("GET", "/api/teams", "api", 200)],
    "api/teams/<slug:slug>/messages": [Case("GET", f"/api/teams/{TEAM}/messages", "api_room", 200)],
    "accounts/login/": [Case("GET", "/accounts/login/", "page_public", 200)],
    "accounts/logout/": [Case("POST", "/accounts/logout/", "page_public", 302)],
    "accounts/password_change/": [Case("GET", "/accounts/password_change/", "page", 200)],
    "accounts/password_change/done/": [Case("GET", "/accounts/password_change/done/", "page", 200)],
    "accounts/password_reset/": [Case("GET", "/accounts/password_reset/", "page_public", 200)],
    "accounts/password_reset/done/": [
        Case("GET", "/accounts/password_reset/done/", "page_public", 200)
    ],
    "accounts/reset/<uidb64>/<token>/": [
        Case("GET", "/accounts/reset/MQ/not-a-token/", "page_public", 200)
    ],
    "accounts/reset/done/": [Case("GET", "/accounts/reset/done/", "page_public", 200)],
    # The admin is one include of many generated routes: its index, and the form a
    # token once used to create a superuser.
    "admin/": [
        Case("GET", "/admin/", "admin", 200),
        Case("POST", "/admin/auth/user/add/", "admin:auth.add_user", 302, _new_user_form),
    ],
}

# A socket's close code when refused, else what answers the message it sends:
# members post; staff allowed to read any room read only.
ROOM_EXPECTED = {
    "anonymous": 4401,
    "user": 4403,
    "member": "message",
    "staff_viewer": "read_only",
    "superuser": "read_only",
    "superuser_token": "read_only",
    "bad_token": 4401,
    "revoked_token": 4401,
}
# Route pattern -> a path it serves and what each identity gets there. Any path that
# is no room is closed 4404 for everyone (comms.routing).
SOCKET_ROUTES = {
    r"^ws/comms/(?P<team>[-\w]+)/?$": (f"/ws/comms/{TEAM}/", ROOM_EXPECTED),
    "": ("/ws/nothing/", dict.fromkeys(ROOM_EXPECTED, 4404)),
}


def _granted(identity: str, perm: str) -> bool:
    return identity in ("superuser", "superuser_token") or (
        identity == "staff_viewer" and perm in VIEW_PERMS
    )


def expected_status(case: Case, identity: str) -> int:
    """Return the status `identity` must get for `case`, by the product's access rules."""
    kind, _, perm = case.access.partition(":")
    if kind.startswith("api"):
        if identity in ("bad_token", "revoked_token"):
            return 401
        if kind == "api_public":
            return case.ok
        if identity == "anonymous":
            return 401
        if kind == "api_room":
            return case.ok if identity not in ("user",) else 403
        if perm and not _granted(identity, perm):
            return 403
        return case.ok
    # Session pages: a token never authenticates them, a bad one included.
    if identity in TOKENS:
        return 403
    if kind == "page_public":
        return case.ok
    if kind == "page":
        return 302 if identity == "anonymous" else case.ok
    # The admin: non-staff are sent to its login page; staff lacking the permission get 403.
    if identity in ("anonymous", "user", "member"):
        return 302
    if perm and not _granted(identity, perm):
        return 403
    return case.ok


def png(colour: tuple[int, int, int] = (200, 90, 40)) -> bytes:
    """Return a small real PNG."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (8, 6), colour).save(out, format="PNG")
    return out.getvalue()
