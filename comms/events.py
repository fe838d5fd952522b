"""The team-room stream: its name and the shape of every event on it, built only here.

Each team has one hub stream, `room.<team slug>` (`room_stream`). Its events are
dicts whose `data` is the exact text each socket sends, encoded once by the
publisher:

- `{"event": "message", "id": <message id>, "prev": <the room's previous message id
  or 0>, "data": "<message JSON>"}` (`message_event`; the frame is `message_json`,
  also the history API's item). `prev` lets a socket deliver a room's messages in
  id order and notice one that is late or lost (comms.delivery).
- `{"event": "typing", "id": None, "origin": <presence id>, "data": "<typing JSON>"}`
  (`typing_event`; not stored, not sent back to the socket it came from).
- `{"event": "presence", "id": None, "origin": <presence id or None>, "data": ...}`
  (`presence_event`: a `joined` or `left` delta, or the full `online` list after
  ghosts expire).
- `{"event": "member_added", "id": None, "user_id": <user id>, "data": "<members JSON>"}`
- `{"event": "member_removed", "id": None, "user_id": <user id>, "data": "<members JSON>"}`
  (control: the sockets of that user in that room close themselves; the others get
  `data`).

`origin` is the presence id of the socket an event came from (one per socket).
Times are UTC ISO 8601 with a 'Z' (`streams.encoding.utc_iso`).
"""

from __future__ import annotations

from typing import Any

from streams.encoding import json_text, utc_iso

from .models import Message


def room_stream(team_slug: str) -> str:
    """Return the hub stream name of a team's room."""
    return f"room.{team_slug}"


def message_json(message: Message, *, team_slug: str | None = None) -> dict[str, Any]:
    """Return the JSON shape of a message, as every client sees it."""
    author = message.author
    return {
        "type": "message",
        "id": message.id,
        "team": team_slug or message.team.slug,
        "author": None if author is None else {"id": author.pk, "username": author.get_username()},
        "body": message.body,
        "kind": message.kind,
        "created_at": utc_iso(message.created_at),
        "client_id": message.client_id,
    }


def message_event(message: Message, *, prev: int, team_slug: str | None = None) -> dict[str, Any]:
    """Return the hub event carrying a message, its JSON encoded once.

    `prev` is the id of the room's message stored just before it (0 for the first).
    """
    data = json_text(message_json(message, team_slug=team_slug))
    return {"event": "message", "id": message.id, "prev": prev, "data": data}


def typing_event(*, user_json: dict[str, Any], origin: str) -> dict[str, Any]:
    """Return the hub event saying that a user is typing on the socket `origin`."""
    data = json_text({"type": "typing", "user": user_json})
    return {"event": "typing", "id": None, "origin": origin, "data": data}


def presence_event(
    *,
    origin: str | None = None,
    joined: dict[str, Any] | None = None,
    left: dict[str, Any] | None = None,
    online: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Return the hub event for a presence change.

    Either a delta (`joined` or `left`: one user) or a full snapshot (`online`).
    Deltas keep a join O(room) instead of O(room^2) when a big room reconnects.
    """
    frame: dict[str, Any] = {"type": "presence"}
    if joined is not None:
        frame["joined"] = joined
    if left is not None:
        frame["left"] = left
    if online is not None:
        frame["online"] = online
    return {"event": "presence", "id": None, "origin": origin, "data": json_text(frame)}


def member_added_event(*, user_id: int, username: str) -> dict[str, Any]:
    """Return the event telling a room that someone joined the team."""
    return _members_event("member_added", "added", user_id, username)


def member_removed_event(*, user_id: int, username: str = "") -> dict[str, Any]:
    """Return the control event that closes a removed member's sockets and tells the rest."""
    return _members_event("member_removed", "removed", user_id, username)


def _members_event(kind: str, change: str, user_id: int, username: str) -> dict[str, Any]:
    data = json_text({"type": "members", change: {"id": user_id, "username": username}})
    return {"event": kind, "id": None, "user_id": user_id, "data": data}
