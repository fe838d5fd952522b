"""Writes of the team rooms: messages and memberships, stored first, then published.

Also the announcements that are not stored (presence, typing): every event on a
room's stream leaves through this module, built by `comms/events.py`, whose
docstring lists them.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

from asgiref.sync import async_to_sync
from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from streams.hub import OrderedPublisher, publish, publish_on_commit

from .bulk import messages_insert
from .events import (
    member_added_event,
    member_removed_event,
    message_event,
    presence_event,
    room_stream,
    typing_event,
)
from .models import Membership, Message, Team
from .selectors import team_user_can_join, team_user_can_post

logger = logging.getLogger(__name__)

BODY_MAX_CHARS = 4000
CLIENT_ID_MAX_CHARS = 64


class MessageInvalid(ValueError):
    """A message the rules refuse; `code` is the error code the client sees."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


# NUL (PostgreSQL text refuses it) and lone surrogates (no UTF-8 form; JSON lets a
# client send "\ud800"): refused up front, so a stored batch never fails on them.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def text_storable(value: str) -> bool:
    """Whether `value` can be stored and sent back (no NUL, no unpaired surrogate)."""
    return not _UNSTORABLE.search(value)


def _check_storable(name: str, value: str) -> None:
    if not text_storable(value):
        raise MessageInvalid(
            "bad_field", f"'{name}' must not contain NUL or unpaired surrogate characters."
        )


def _clean_body(body: Any) -> str:
    if not isinstance(body, str):
        raise MessageInvalid("bad_field", "'body' must be a string.")
    _check_storable("body", body)
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
    _check_storable("client_id", client_id)
    return client_id


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


def _room_lock(team: Team) -> None:
    """Serialise a room's writers until the transaction ends: ids commit in id order.

    Message ids come from one table-wide sequence, so two transactions could commit
    a room's ids 6 before 5; a socket that has sent 6 could then never tell that 5
    is still coming. With the team's row locked (PostgreSQL; SQLite has one writer
    anyway), once a room's id is visible every lower id of the room is visible too,
    so a replay up to id R holds every message up to R. Call inside `atomic()`.
    """
    Team.objects.select_for_update().filter(pk=team.pk).values_list("pk").first()


def _previous_id(team: Team, message_id: int) -> int:
    """Return the id of the room's message before `message_id` (0 if none), under the lock."""
    previous = (
        Message.objects.filter(team=team, id__lt=message_id)
        .order_by("-id")
        .values_list("id", flat=True)
        .first()
    )
    return previous or 0


def message_post(
    *, team: Team, author: AbstractBaseUser, body: Any, client_id: Any = None
) -> tuple[Message, bool]:
    """Store a chat message, then publish it to the room; return it and whether it is new.

    A resend (same client_id) is not published again: sockets that already got it
    would see a duplicate. The caller answers the sender with the stored message.
    """
    with transaction.atomic():
        _room_lock(team)
        message, created = message_store(team=team, author=author, body=body, client_id=client_id)
        if created:
            event = message_event(message, team_slug=team.slug, prev=_previous_id(team, message.id))
            publish_on_commit(room_stream(team.slug), event)
    return message, created


def message_post_system(*, team: Team, body: str, kind: str = "system") -> Message:
    """Store a system or alarm message (no author), then publish it to the room."""
    if kind not in (Message.Kind.SYSTEM, Message.Kind.ALARM):
        raise ValueError(f"kind must be 'system' or 'alarm', not {kind!r}")
    body = _clean_body(body)
    with transaction.atomic():
        _room_lock(team)
        message = Message.objects.create(team=team, author=None, body=body, kind=kind)
        event = message_event(message, team_slug=team.slug, prev=_previous_id(team, message.id))
        publish_on_commit(room_stream(team.slug), event)
    return message


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
    """Publish, once the transaction commits, that a member left the team.

    The room also gets a presence change at once: the online list without the
    removed user (their sockets are closing; staff allowed into any room stay).
    """
    publish_on_commit(
        room_stream(team.slug), member_removed_event(user_id=user_id, username=username)
    )
    user = get_user_model().objects.filter(pk=user_id).first()
    stays = user is not None and team_user_can_join(team=team, user=user)
    _presence_refresh_on_commit(team.slug, without_user_id=None if stays else user_id)


def membership_added_notify(*, team: Team, user_id: int, username: str) -> None:
    """Publish, once the transaction commits, that someone joined the team.

    The room also gets a presence change: a fresh online list.
    """
    publish_on_commit(
        room_stream(team.slug), member_added_event(user_id=user_id, username=username)
    )
    _presence_refresh_on_commit(team.slug, without_user_id=None)


async def presence_refresh(*, team_slug: str, without_user_id: int | None = None) -> None:
    """Send a room who is online now (on every worker), leaving out `without_user_id`."""
    from .presence import get_tracker  # presence imports this module

    online = await get_tracker().online(team_slug)
    if without_user_id is not None:
        online = [user for user in online if user["id"] != without_user_id]
    await presence_announce(team_slug=team_slug, online=online)


# Scheduled presence refreshes, referenced until done so the event loop cannot drop them.
_pending: set[asyncio.Task] = set()


def _presence_refresh_on_commit(team_slug: str, *, without_user_id: int | None) -> None:
    """Run `presence_refresh` once the transaction commits; log a failure (not stored)."""

    def run() -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            if loop is None:
                async_to_sync(presence_refresh)(
                    team_slug=team_slug, without_user_id=without_user_id
                )
            else:
                # Sync code called from async code in this thread: schedule it on the loop.
                coro = presence_refresh(team_slug=team_slug, without_user_id=without_user_id)
                task = loop.create_task(coro)
                _pending.add(task)
                task.add_done_callback(_pending.discard)
        except Exception:
            # The membership is stored; presence heals with the next join, leave or prune.
            logger.exception("presence refresh of room %s failed", team_slug)

    transaction.on_commit(run)


class NotAllowed(PermissionError):
    """The author may not post in this room (not, or no longer, a member)."""


def message_clean(*, body: Any, client_id: Any = None) -> tuple[str, str | None]:
    """Validate a chat message's fields without storing; raise MessageInvalid."""
    return _clean_body(body), _clean_client_id(client_id)


def _store_many_as_member(
    *, team: Team, author: AbstractBaseUser, items: list[tuple[str, str | None]]
) -> tuple[list[tuple[Message, bool]], int]:
    """Store the batch in one transaction; return the results and the new messages' `prev`."""
    if not team_user_can_post(team=team, user=author):
        raise NotAllowed(f"{author} may not post in {team.slug}")
    with transaction.atomic():
        _room_lock(team)
        try:
            # One INSERT for the whole batch (the common case: no resend in it).
            with transaction.atomic():
                stored = messages_insert(team=team, author=author, items=items)
            results = [(message, True) for message in stored]
        except IntegrityError:
            # A resent client_id: one by one, each resend answered with the stored row.
            results = [
                message_store(team=team, author=author, body=body, client_id=client_id)
                for body, client_id in items
            ]
        first = next((message.id for message, created in results if created), None)
        return results, 0 if first is None else _previous_id(team, first)


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
    results, prev = await database_sync_to_async(_store_many_as_member)(
        team=team, author=author, items=items
    )
    events = []
    for message, created in results:
        if created:
            # The batch's new ids are the room's consecutive messages (the room was locked).
            events.append(message_event(message, team_slug=team.slug, prev=prev))
            prev = message.id
    # One hub message for the batch: each worker wakes its sockets once for all of it.
    publisher.publish_many(room_stream(team.slug), events)
    return results


async def presence_announce(
    *,
    team_slug: str,
    origin: str | None = None,
    joined: dict[str, Any] | None = None,
    left: dict[str, Any] | None = None,
    online: list[dict[str, Any]] | None = None,
) -> None:
    """Tell a room who joined or left (from socket `origin`), or who is online now.

    Not stored: a failure raises; the room socket logs it and goes on (comms.consumers).
    """
    event = presence_event(origin=origin, joined=joined, left=left, online=online)
    await publish(room_stream(team_slug), event)


async def typing_announce(*, team_slug: str, presence_id: str, user_json: dict[str, Any]) -> None:
    """Tell a room's other sockets that a user is typing (not stored)."""
    await publish(room_stream(team_slug), typing_event(user_json=user_json, origin=presence_id))
