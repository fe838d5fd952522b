"""Writes of the team rooms: messages and memberships, stored first, then published.

Room events on the hub stream `room.<team slug>` (see `room_stream`) are dicts:

- `{"event": "message", "id": <message id>, "data": "<message JSON text>"}`
- `{"event": "typing", "id": None, "data": "<typing JSON text>"}`
- `{"event": "presence", "id": None, "data": "<presence JSON text>"}`
- `{"event": "member_removed", "id": None, "user_id": <user id>, "data": "<members JSON>"}`
  (control: sockets of that user in that room close themselves; the others get `data`)
- `{"event": "member_added", "id": None, "user_id": <user id>, "data": "<members JSON>"}`

`data` is the exact text each socket sends, encoded once by the publisher.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from streams.hub import publish_from_sync

from .models import Membership, Message, Team

logger = logging.getLogger(__name__)

BODY_MAX_CHARS = 4000
CLIENT_ID_MAX_CHARS = 64


class MessageInvalid(ValueError):
    """A message the rules refuse; `code` is the error code the client sees."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


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
        "created_at": message.created_at.isoformat().replace("+00:00", "Z"),
        "client_id": message.client_id,
    }


def message_event(message: Message, *, team_slug: str | None = None) -> dict[str, Any]:
    """Return the hub event carrying a message, its JSON encoded once."""
    data = json.dumps(message_json(message, team_slug=team_slug), separators=(",", ":"))
    return {"event": "message", "id": message.id, "data": data}


def _clean_body(body: Any) -> str:
    if not isinstance(body, str):
        raise MessageInvalid("bad_field", "'body' must be a string.")
    body = body.strip()
    if not body:
        raise MessageInvalid("empty_body", "The message is empty.")
    if len(body) > BODY_MAX_CHARS:
        raise MessageInvalid("body_too_long", f"A message has at most {BODY_MAX_CHARS} characters.")
    return body


def _clean_client_id(client_id: Any) -> str | None:
    if client_id is None or client_id == "":
        return None
    if not isinstance(client_id, str) or len(client_id) > CLIENT_ID_MAX_CHARS:
        raise MessageInvalid(
            "bad_field", f"'client_id' must be a string of at most {CLIENT_ID_MAX_CHARS} chars."
        )
    return client_id


def _publish_now(stream: str, event: dict[str, Any]) -> None:
    """Publish from synchronous code; never let a failed publish undo a stored write.

    Sync code normally runs in a thread without an event loop (a sync view, the admin,
    a command, sync_to_async). If a loop does run in this thread (sync code called from
    async code directly), async_to_sync is impossible: the publish is scheduled on it.
    """
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    try:
        if loop is None:
            publish_from_sync(stream, event)
        else:
            from streams.hub import publish

            task = loop.create_task(publish(stream, event))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
    except Exception:
        # Stored already: clients get it from history or resume.
        logger.exception("publishing on %s failed", stream)


_pending: set[asyncio.Task] = set()


def _publish_on_commit(team: Team, event: dict[str, Any]) -> None:
    stream = room_stream(team.slug)
    transaction.on_commit(lambda: _publish_now(stream, event))


def message_store(
    *, team: Team, author: AbstractBaseUser, body: Any, client_id: Any = None
) -> tuple[Message, bool]:
    """Store a chat message without publishing it; return it and whether it is new.

    Idempotent by (team, author, client_id): a resend returns the stored message.
    The unique constraint decides under concurrency (SQLite and PostgreSQL alike);
    the loser of a race reads the winner's row.
    """
    body = _clean_body(body)
    client_id = _clean_client_id(client_id)
    # Insert first: a resend is rare, so the common path is one INSERT, no lookup.
    try:
        with transaction.atomic():
            message = Message.objects.create(
                team=team, author=author, body=body, kind=Message.Kind.CHAT, client_id=client_id
            )
    except IntegrityError:
        if client_id is None:
            raise
        existing = (
            Message.objects.select_related("author", "team")
            .filter(team=team, author=author, client_id=client_id)
            .first()
        )
        if existing is None:
            raise
        return existing, False
    return message, True


def message_post(
    *, team: Team, author: AbstractBaseUser, body: Any, client_id: Any = None
) -> tuple[Message, bool]:
    """Store a chat message, then publish it to the room; return it and whether it is new.

    A resend (same client_id) is not published again: sockets that already got it
    would see a duplicate. The caller answers the sender with the stored message.
    """
    message, created = message_store(team=team, author=author, body=body, client_id=client_id)
    if created:
        _publish_on_commit(team, message_event(message, team_slug=team.slug))
    return message, created


def message_post_system(*, team: Team, body: str, kind: str = "system") -> Message:
    """Store a system or alarm message (no author), then publish it to the room."""
    if kind not in (Message.Kind.SYSTEM, Message.Kind.ALARM):
        raise ValueError(f"kind must be 'system' or 'alarm', not {kind!r}")
    body = _clean_body(body)
    with transaction.atomic():
        message = Message.objects.create(team=team, author=None, body=body, kind=kind)
        _publish_on_commit(team, message_event(message, team_slug=team.slug))
    return message


def _members_event(kind: str, user_id: int, username: str) -> dict[str, Any]:
    change = "added" if kind == "member_added" else "removed"
    data = json.dumps({"type": "members", change: {"id": user_id, "username": username}})
    return {"event": kind, "id": None, "user_id": user_id, "data": data}


def member_removed_event(user_id: int, username: str = "") -> dict[str, Any]:
    """Return the control event that closes a removed member's sockets and tells the rest."""
    return _members_event("member_removed", user_id, username)


def team_member_add(
    *, team: Team, user: AbstractBaseUser, role: str = Membership.Role.MEMBER
) -> Membership:
    """Add a user to a team (or change their role); return the membership.

    The room's open sockets hear of a new member (`post_save` in comms.signals).
    """
    with transaction.atomic():
        membership, created = Membership.objects.get_or_create(
            team=team, user=user, defaults={"role": role}
        )
        if not created and membership.role != role:
            membership.role = role
            membership.save(update_fields=["role"])
    return membership


def team_member_remove(*, team: Team, user: AbstractBaseUser) -> bool:
    """Remove a user from a team; their open sockets for the room close. Return if removed.

    The `post_delete` signal (comms.signals) publishes the control event, so a
    deletion through the admin inline or a cascade closes the sockets too.
    """
    with transaction.atomic():
        deleted = 0
        for membership in Membership.objects.filter(team=team, user=user):
            membership.delete()
            deleted += 1
    return deleted > 0


def membership_removed_notify(*, team: Team, user_id: int, username: str = "") -> None:
    """Publish, once the transaction commits, that a member left the team."""
    _publish_on_commit(team, member_removed_event(user_id, username))


def membership_added_notify(*, team: Team, user_id: int, username: str) -> None:
    """Publish, once the transaction commits, that someone joined the team."""
    _publish_on_commit(team, _members_event("member_added", user_id, username))


class NotAllowed(PermissionError):
    """The author may not post in this room (not, or no longer, a member)."""


def message_clean(*, body: Any, client_id: Any = None) -> tuple[str, str | None]:
    """Validate a chat message's fields without storing; raise MessageInvalid."""
    return _clean_body(body), _clean_client_id(client_id)


def _store_many_as_member(
    *, team: Team, author: AbstractBaseUser, items: list[tuple[str, str | None]]
) -> list[tuple[Message, bool]]:
    from .selectors import team_user_can_join

    if not team_user_can_join(team=team, user=author):
        raise NotAllowed(f"{author} may not post in {team.slug}")
    with transaction.atomic():
        return [
            message_store(team=team, author=author, body=body, client_id=client_id)
            for body, client_id in items
        ]


async def messages_post_async(
    *,
    team: Team,
    author: AbstractBaseUser,
    items: list[tuple[str, str | None]],
    publisher: OrderedPublisher,
) -> list[tuple[Message, bool]]:
    """Store a sender's queued (already cleaned) messages in one transaction, then publish.

    A socket sending back to back queues its messages while the previous batch is
    written; one membership check and one commit per batch instead of per message.
    Order is kept; resends (same client_id) come back with created=False.
    """
    from channels.db import database_sync_to_async

    results = await database_sync_to_async(_store_many_as_member)(
        team=team, author=author, items=items
    )
    for message, created in results:
        if created:
            publisher.publish(room_stream(team.slug), message_event(message, team_slug=team.slug))
    return results


class OrderedPublisher:
    """Publish a sender's events in order without waiting for each Redis round trip.

    A socket sending back to back stores message n+1 while message n is still on its
    way; each publish starts only after the previous one finished, so order holds.
    """

    def __init__(self) -> None:
        self._tail: asyncio.Task | None = None

    def publish(self, stream: str, event: dict[str, Any]) -> None:
        previous = self._tail
        self._tail = asyncio.get_running_loop().create_task(self._after(previous, stream, event))

    async def _after(self, previous: asyncio.Task | None, stream: str, event: dict) -> None:
        from streams.hub import publish

        if previous is not None:
            await asyncio.wait([previous])
        try:
            await publish(stream, event)
        except Exception:
            # Stored already: members get it on their next resume or history page.
            logger.exception("publishing %s on %s failed", event.get("id"), stream)

    async def drain(self) -> None:
        """Wait until everything handed over so far is published."""
        if self._tail is not None:
            await asyncio.wait([self._tail])
