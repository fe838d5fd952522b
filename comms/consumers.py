"""The team room WebSocket: `/ws/comms/<team>/`.

Refusals (4401 not authenticated, 4404 unknown team, 4403 not a member) are decided
before `accept()`, and nothing of the room is sent or subscribed before them. The
socket is then accepted and at once closed with the code: closing before accept
makes daphne and uvicorn answer the handshake with HTTP 403, and a browser or
wscat then sees close code 1006 instead of the reason.

Fan-out: each socket subscribes to the process's hub stream `room.<slug>` and a
reader task forwards the pre-encoded event text. The socket is never itself a
channel-layer member (one Redis delivery per worker, not per socket).

Frames over 64 KiB close with 1009 (checked here: uvicorn's own limit is 16 MiB
and daphne has none). daphne cannot send 1009 or 1013 (autobahn allows only 1000
and 3000-4999), so under daphne they are 4009 and 4013.

Seam rule: subscribe first, then replay from the database (history on join,
`resume`, or `?after=<id>` instead of the join history), and skip live messages
already sent on this socket. On one socket a message id arrives at most once
across `history` (the join snapshot), `resume` and live `message` frames;
explicit `{"type": "history", "before": id}` pages are the exception, being asked
for.

What was sent is two numbers, not a set of ids: every room message with an id in
[`sent_low`, `floor`] has been sent. That holds because a room's messages are
delivered in id order: a room's ids commit in id order (the services lock the
room), so a replay up to id R holds every message up to R; each live event
carries `prev`, the room's message before it, and one whose `prev` is not sent yet
(another worker's publish overtook it) is held until `prev` arrives, or, after
`LATE_MESSAGE_WAIT`, the gap is read from the store (a publish that failed). A
client's newest id is therefore a complete cursor for `after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from mission_control.database_outage import DATABASE_ERRORS
from mission_control.parsing import INT64_MAX
from streams.hub import OrderedPublisher, SubscriberOverflow, subscribe

from .events import message_json, room_stream
from .presence import get_tracker
from .ratelimit import chat_rate_allow
from .selectors import message_after, message_history, team_get, team_user_can_join
from .services import (
    CLIENT_ID_MAX_CHARS,
    MessageInvalid,
    NotAllowed,
    message_clean,
    messages_post_async,
    presence_announce,
    typing_announce,
)
from .throttle import TokenBucket
from .wire import event_frame, raw_writer

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 64 * 1024
RESUME_CHUNK = 500
# How long a live message waits for the room's earlier one before the gap is read
# from the store (another worker's publish is normally milliseconds behind).
LATE_MESSAGE_WAIT = 0.5
TYPING_MIN_INTERVAL = 1.0
# A message id in a URL: ASCII digits (`int()` alone takes '²' and '٣'), at most INT64_MAX.
_ID_TEXT = re.compile(r"[0-9]{1,19}")

CLOSE_NOT_AUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_UNKNOWN_TEAM = 4404
CLOSE_TOO_BIG = 1009
CLOSE_TOO_SLOW = 1013
CLOSE_INTERNAL_ERROR = 1011
# The database does not answer (mission_control.database_outage closes the handshake so too).
CLOSE_TRY_AGAIN_LATER = 1013

_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _is_id(value: Any) -> bool:
    """Return whether a frame's value can be a message id (0 included), as a column holds it."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= INT64_MAX


def _server_send(send: Any) -> Any:
    """Return the server's own send callable from under Channels' session wrapper.

    `InstanceSessionWrapper.send` only acts on `http.response.start`; for every
    `websocket.send` it still reads the lazy session twice, about 15% of a room
    burst's CPU (profiled, README), so live frames skip it.
    """
    for _ in range(10):
        if isinstance(send, functools.partial):
            return send  # a partial binds arguments: call it as it is
        if hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send  # channels.sessions.InstanceSessionWrapper
        else:
            break
    return send


def _served_by_daphne(send: Any) -> bool:
    """Return whether the server's own send callable (under Channels' wrappers) is daphne's."""
    for _ in range(10):
        if isinstance(send, functools.partial):
            send = send.func
        elif hasattr(getattr(send, "__self__", None), "real_send"):
            send = send.__self__.real_send  # channels.sessions.InstanceSessionWrapper
        else:
            break
    return getattr(send, "__module__", "").startswith("daphne")


class TeamRoomConsumer(AsyncJsonWebsocketConsumer):
    """One member's socket in a team room."""

    # No channel layer per socket: the hub is the only channel-layer member.
    channel_layer_alias = None

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.joined = False
        self.closing = False
        # This socket's own id in presence entries and in the `origin` of its events.
        self.presence_id = uuid.uuid4().hex
        # Every room message with sent_low <= id <= floor has been sent on this socket.
        self.sent_low = 1
        self.floor = 0
        # Live message events waiting for the room's earlier message, by its id (`prev`).
        self._held: dict[int, dict[str, Any]] = {}
        self._held_since = 0.0
        # Older than sent_low yet sent once (the answer to a resent client_id): rare.
        self._sent_below: set[int] = set()
        self._bad_after = False
        self._stack = contextlib.AsyncExitStack()
        self._reader: asyncio.Task | None = None
        self._replay_lock = asyncio.Lock()
        self._last_typing = 0.0
        self._publisher = OrderedPublisher()
        self._outbox: list[tuple[str, str | None]] = []
        self._writer: asyncio.Task | None = None
        self._replays: TokenBucket | None = None

    # Connection -------------------------------------------------------------------

    async def connect(self) -> None:
        user = self.scope.get("user")
        slug = self.scope["url_route"]["kwargs"]["team"]
        if user is None or not user.is_authenticated:
            return await self._refuse(CLOSE_NOT_AUTHENTICATED)
        team = await database_sync_to_async(team_get)(slug=slug)
        if team is None:
            return await self._refuse(CLOSE_UNKNOWN_TEAM)
        if not await database_sync_to_async(team_user_can_join)(team=team, user=user):
            return await self._refuse(CLOSE_FORBIDDEN)
        self.user = user
        # The user as every room frame names them (presence, typing).
        self.user_json = {"id": user.pk, "username": user.get_username()}
        self.team = team
        self.stream = room_stream(team.slug)
        # Subscribe before reading history so nothing published meanwhile is missed.
        self.sub = await self._stack.enter_async_context(subscribe(self.stream))
        try:
            await self._join()
        except BaseException:
            # No disconnect handler runs after a failed connect: leave no subscription or
            # presence entry (this process's heartbeat would keep a ghost alive).
            await self.disconnect(1011)
            raise

    async def _join(self) -> None:
        user, team = self.user, self.team
        self._replays = TokenBucket(
            capacity=settings.CHAT_REPLAY_BURST, rate=settings.CHAT_REPLAY_PER_SECOND
        )
        await self.accept()
        self.joined = True
        # Live frames go straight to the server (see _server_send), once accepted;
        # under uvicorn's websockets-sansio, pre-framed to its transport (comms.wire).
        self._send_live = _server_send(self.base_send)
        self._write_raw = raw_writer(self._send_live)
        after = self._after_parameter()
        if after is not None:
            # A reconnect: only what came after the client's newest message.
            self.floor = after
            await self._resume(after)
        else:
            await self._join_history()
        tracker = get_tracker()
        online = await tracker.join(team.slug, self.presence_id, user.pk, user.get_username())
        await self.send(text_data=_dumps({"type": "presence", "online": online}))
        await self._ephemeral(
            presence_announce(team_slug=team.slug, origin=self.presence_id, joined=self.user_json)
        )
        self._reader = asyncio.get_running_loop().create_task(self._forward())

    def _after_parameter(self) -> int | None:
        """Return `?after=<id>` of the connect URL, or None (absent or refused with an error)."""
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("after")
        if not values:
            return None
        if _ID_TEXT.fullmatch(values[-1]) is None or int(values[-1]) > INT64_MAX:
            self._bad_after = True
            return None
        return int(values[-1])

    async def _join_history(self) -> None:
        if self._bad_after:
            await self._error("bad_field", "'after' must be a message id (or 0).")
        messages, has_more = await database_sync_to_async(message_history)(team=self.team)
        if messages:
            # The snapshot is the newest messages: everything from its first id is sent.
            self.sent_low = messages[0].id if has_more else 1
            self.floor = messages[-1].id
        await self.send(
            text_data=_dumps(
                {
                    "type": "history",
                    "messages": [message_json(m, team_slug=self.team.slug) for m in messages],
                    "has_more": has_more,
                }
            )
        )

    async def _refuse(self, code: int) -> None:
        # Accept, then close: the client sees the code (see the module docstring).
        self.closing = True
        await self.accept()
        await self.close(code=code)

    async def dispatch(self, message: dict[str, Any]) -> None:
        try:
            if message["type"] == "websocket.receive":
                # Channels closes stale database connections before every handler (a thread
                # hop per frame); database_sync_to_async already does it around each query.
                await self.websocket_receive(message)
            else:
                await super().dispatch(message)
        except DATABASE_ERRORS as exc:
            if message["type"] == "websocket.connect":
                raise  # connect cleans up; mission_control.database_outage closes 1013
            # Close 1013 and let the client's close run disconnect (presence, subscription).
            logger.warning("closing a socket of %s 1013: database away (%r)", self.team, exc)
            await self._close(CLOSE_TRY_AGAIN_LATER)

    async def disconnect(self, code: int) -> None:
        self.closing = True
        with contextlib.suppress(Exception):
            # Messages accepted before the close are stored and published all the same.
            if self._writer is not None:
                await asyncio.shield(self._writer)
            await asyncio.shield(self._publisher.drain())
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._stack.aclose()
        if self.joined:
            self.joined = False
            with contextlib.suppress(Exception):
                online = await asyncio.shield(get_tracker().leave(self.team.slug, self.presence_id))
                # Another tab (on any worker) keeps the user online: nothing changed.
                if all(user["id"] != self.user_json["id"] for user in online):
                    await presence_announce(
                        team_slug=self.team.slug, origin=self.presence_id, left=self.user_json
                    )

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=self._server_close_code(code))

    def _server_close_code(self, code: int) -> int:
        """Return `code`, or 4000 + its last three digits where the server refuses it.

        daphne (autobahn) only sends 1000 and 3000-4999 and turns anything else into
        1011, so under `runserver` 1009 becomes 4009 and 1013 becomes 4013.
        """
        if 1000 < code < 3000 and _served_by_daphne(self.base_send):
            return 4000 + code % 1000
        return code

    # Live events --------------------------------------------------------------------

    async def _forward(self) -> None:
        """Copy this room's live events to the socket until it closes."""
        loop = asyncio.get_running_loop()
        try:
            while not self.closing:
                if self._held:
                    wait = self._held_since + LATE_MESSAGE_WAIT - loop.time()
                    try:
                        event = await asyncio.wait_for(self.sub.get(), max(wait, 0.0))
                    except TimeoutError:
                        await self._catch_up()
                        continue
                else:
                    event = await self.sub.get()
                if self._replay_lock.locked():
                    async with self._replay_lock:
                        await self._deliver(event)
                else:
                    await self._deliver(event)
        except SubscriberOverflow:
            if self.sub.reason == "resync":
                await self._error("resync", "Live delivery was interrupted; reconnect and resume.")
            else:
                await self._error("too_slow", "This socket fell behind; reconnect and resume.")
            await self._close(CLOSE_TOO_SLOW)

    async def _deliver(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        if kind == "message":
            if event["id"] <= self.floor:
                return  # sent already (a replay, or the join history)
            if event.get("prev", 0) > self.floor:
                # The room's earlier message is not here yet: keep the id order.
                if not self._held:
                    self._held_since = asyncio.get_running_loop().time()
                self._held[event["prev"]] = event
                return
            # Counted as sent before the await, so a resume meanwhile does not repeat it.
            self.floor = event["id"]
            await self._send_message(event)
            if self._held:
                await self._release_held()
        elif kind in ("presence", "typing"):
            if event.get("origin") != self.presence_id:
                await self.send(text_data=event["data"])
        elif kind == "member_removed" and event.get("user_id") == self.user.pk:
            # Staff allowed into any room stay; everyone else is cut off at once.
            allowed = await database_sync_to_async(team_user_can_join)(
                team=self.team, user=self.user
            )
            if not allowed:
                await self._close(CLOSE_FORBIDDEN)
        elif kind in ("member_removed", "member_added") and "data" in event:
            await self.send(text_data=event["data"])

    async def _send_message(self, event: dict[str, Any]) -> None:
        """The hot path (every delivery): the event's text, encoded and framed once per process."""
        write = self._write_raw
        if write is None or not write(event_frame(event)):
            await self._send_live({"type": "websocket.send", "text": event["data"]})

    async def _release_held(self) -> None:
        """Send the held messages whose earlier message is sent now; drop those replayed."""
        held = self._held
        for prev in [prev for prev, event in held.items() if event["id"] <= self.floor]:
            del held[prev]
        while held:
            ready = [prev for prev in held if prev <= self.floor]
            if not ready:
                break
            event = held.pop(min(ready))
            if event["id"] > self.floor:
                self.floor = event["id"]
                await self._send_message(event)
        if held:
            self._held_since = asyncio.get_running_loop().time()

    async def _catch_up(self) -> None:
        """Send, in id order, what the store has after `floor` (a late or lost publish)."""
        async with self._replay_lock:
            while True:
                batch = await database_sync_to_async(message_after)(
                    team=self.team, after=self.floor, limit=RESUME_CHUNK
                )
                for message in batch:
                    self.floor = message.id
                    await self.send(
                        text_data=_dumps(message_json(message, team_slug=self.team.slug))
                    )
                if len(batch) < RESUME_CHUNK:
                    break
            await self._release_held()

    # Client frames ------------------------------------------------------------------

    async def websocket_receive(self, message: dict[str, Any]) -> None:
        if self.closing:
            return
        text = message.get("text")
        if text is not None:
            # A character is at most 4 UTF-8 bytes: only long texts need encoding.
            if len(text) > MAX_FRAME_BYTES // 4 and len(text.encode()) > MAX_FRAME_BYTES:
                return await self._close(CLOSE_TOO_BIG)
            return await self._receive_text(text)
        data = message.get("bytes") or b""
        if len(data) > MAX_FRAME_BYTES:
            return await self._close(CLOSE_TOO_BIG)
        await self._error("binary_frame", "Send text frames: JSON or a plain-text message.")

    async def _receive_text(self, text: str) -> None:
        if not text.lstrip().startswith(("{", "[")):
            # wscat and friends: a plain-text frame is a message body.
            return await self._post(text, None)
        try:
            content = json.loads(text)
        except ValueError as exc:
            return await self._error("invalid_json", f"Invalid JSON: {exc}")
        except RecursionError:
            # 64 KiB of '[' nest deeper than the parser's recursion limit.
            return await self._error("invalid_json", "Invalid JSON: nested too deep.")
        if not isinstance(content, dict):
            return await self._error("invalid_json", "A JSON frame must be an object.")
        await self.receive_json(content)

    async def receive_json(self, content: dict[str, Any], **kwargs) -> None:
        kind = content.get("type")
        if kind == "message":
            return await self._post(content.get("body"), content.get("client_id"))
        if kind == "history":
            before = content.get("before")
            if before is not None and not _is_id(before):
                return await self._error("bad_field", "'before' must be a message id.")
            if not await self._replay_allowed():
                return None
            return await self._history(before)
        if kind == "resume":
            after = content.get("after")
            if not _is_id(after):
                return await self._error("bad_field", "'after' must be a message id (or 0).")
            if not await self._replay_allowed():
                return None
            return await self._resume(after)
        if kind == "typing":
            return await self._typing()
        await self._error(
            "unknown_type", f"Unknown type {kind!r}: use message, history, resume or typing."
        )

    async def _error(self, code: str, detail: str, **extra: Any) -> None:
        frame = {"type": "error", "code": code, "detail": detail, **extra}
        await self.send(text_data=_dumps(frame))

    async def _replay_allowed(self) -> bool:
        """Take a replay token (comms.throttle); answer `rate_limited` when none is left."""
        if self._replays is None or self._replays.try_take():
            return True
        wait = round(self._replays.wait_seconds(), 2)
        await self._error(
            "rate_limited", "Too many history/resume requests; retry later.", retry_after=wait
        )
        return False

    @staticmethod
    def _naming(client_id: Any) -> dict[str, str]:
        """Name a refused message's valid client_id in its error.

        The sender can then mark exactly that message failed and not resend it.
        """
        if isinstance(client_id, str) and 0 < len(client_id) <= CLIENT_ID_MAX_CHARS:
            return {"client_id": client_id}
        return {}

    async def _post(self, body: Any, client_id: Any) -> None:
        try:
            body, client_id = message_clean(body=body, client_id=client_id)
        except MessageInvalid as exc:
            return await self._error(exc.code, exc.detail, **self._naming(client_id))
        if not await chat_rate_allow(user_id=self.user.pk):
            return await self._error(
                "rate_limited", "Too many messages; slow down.", **self._naming(client_id)
            )
        # Queued for the writer task, so frames sent back to back are stored in one
        # transaction while the previous batch is being written (order is kept).
        self._outbox.append((body, client_id))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write_outbox())

    async def _write_outbox(self) -> None:
        while self._outbox:
            batch, self._outbox = self._outbox, []
            try:
                results = await messages_post_async(
                    team=self.team, author=self.user, items=batch, publisher=self._publisher
                )
            except NotAllowed:
                self._outbox.clear()
                if await database_sync_to_async(team_user_can_join)(team=self.team, user=self.user):
                    # Staff reading a room of another team: the socket stays, read-only.
                    for _ in batch:
                        await self._error("read_only", "Only the team's members post here.")
                    return None
                return await self._close(CLOSE_FORBIDDEN)
            except DATABASE_ERRORS as exc:
                # Not stored: the client resends them with the same client_id after 1013.
                logger.warning(
                    "storing %d message(s) in %s: database away (%r)", len(batch), self.team, exc
                )
                self._outbox.clear()
                return await self._close(CLOSE_TRY_AGAIN_LATER)
            except Exception:
                logger.exception("storing %d message(s) in %s failed", len(batch), self.team)
                self._outbox.clear()
                return await self._close(CLOSE_INTERNAL_ERROR)
            for message, created in results:
                if created or self.sent_low <= message.id <= self.floor:
                    continue
                if message.id < self.sent_low:
                    if message.id in self._sent_below:
                        continue
                    # A resend of an old message: answer with it (it is not broadcast again).
                    self._sent_below.add(message.id)
                    await self.send(
                        text_data=_dumps(message_json(message, team_slug=self.team.slug))
                    )
                else:
                    # Newer than what this socket has sent: send the room up to it, in order.
                    await self._catch_up()

    async def _history(self, before: int | None) -> None:
        messages, has_more = await database_sync_to_async(message_history)(
            team=self.team, before=before
        )
        await self.send(
            text_data=_dumps(
                {
                    "type": "history",
                    "before": before,
                    "messages": [message_json(m, team_slug=self.team.slug) for m in messages],
                    "has_more": has_more,
                }
            )
        )

    async def _resume(self, after: int) -> None:
        """Send the messages after `after` not yet sent on this socket, then go on live.

        Those are the ids between `after` and `sent_low` (older than the join history)
        and those after `floor`; then everything from `after` on counts as sent.
        """
        async with self._replay_lock:
            cursor = after
            while True:
                if self.sent_low - 1 <= cursor < self.floor:
                    cursor = self.floor  # skip what this socket has sent
                batch = await database_sync_to_async(message_after)(
                    team=self.team, after=cursor, limit=RESUME_CHUNK
                )
                fresh = [
                    m
                    for m in batch
                    if not self.sent_low <= m.id <= self.floor and m.id not in self._sent_below
                ]
                # A short page reached the newest message: nothing more to read.
                more = len(batch) == RESUME_CHUNK
                if batch:
                    cursor = batch[-1].id
                if not more or cursor >= self.floor:
                    # Past the sent range: the replay holds every room id up to `cursor`.
                    self.floor = max(self.floor, cursor)
                await self.send(
                    text_data=_dumps(
                        {
                            "type": "resume",
                            "after": after,
                            "messages": [message_json(m, team_slug=self.team.slug) for m in fresh],
                            "more": more,
                        }
                    )
                )
                if not more:
                    break
                if self._replays is not None:
                    # Each further page waits for a token: a long gap is paced, not refused.
                    await self._replays.take()
            self.sent_low = min(self.sent_low, after + 1)
            self._sent_below = {i for i in self._sent_below if i < self.sent_low}
            await self._release_held()

    async def _typing(self) -> None:
        now = time.monotonic()
        if now - self._last_typing < TYPING_MIN_INTERVAL:
            return
        self._last_typing = now
        await self._ephemeral(
            typing_announce(
                team_slug=self.team.slug, presence_id=self.presence_id, user_json=self.user_json
            )
        )

    async def _ephemeral(self, announcement: Awaitable[None]) -> None:
        """Await a presence or typing announcement; if Redis is away it is dropped, not fatal.

        Neither is stored: a lost one is repaired by the next presence snapshot
        (the heartbeat after recovery) or does not matter (typing).
        """
        try:
            await announcement
        except Exception as exc:
            logger.warning("presence or typing on %s not sent: %r", self.team.slug, exc)
