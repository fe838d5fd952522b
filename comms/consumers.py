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

The consumer is thin: client frames are parsed and validated in comms.frames
(`ClientFramesMixin`), and history, resume and live delivery in id order (the
seam rule, `sent_low`/`floor`, holding back an overtaking message) live in
comms.delivery (`RoomDeliveryMixin`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from mission_control.database_outage import DATABASE_ERRORS
from mission_control.parsing import INT64_MAX
from streams.hub import PUBLISH_WAIT_SECONDS, OrderedPublisher, subscribe

from .bounded import wait_at_most
from .delivery import RoomDeliveryMixin
from .events import message_json, room_stream
from .frames import (
    _ID_TEXT,
    CLOSE_FORBIDDEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NOT_AUTHENTICATED,
    CLOSE_TRY_AGAIN_LATER,
    CLOSE_UNKNOWN_TEAM,
    ClientFramesMixin,
    _dumps,
    _served_by_daphne,
    _server_send,
)
from .presence import get_tracker
from .ratelimit import chat_rate_allow
from .selectors import team_get, team_user_can_join
from .services import (
    MessageInvalid,
    NotAllowed,
    message_clean,
    messages_post_async,
    presence_announce,
    typing_announce,
)
from .throttle import TokenBucket
from .wire import raw_writer, received_backlog

logger = logging.getLogger(__name__)

TYPING_MIN_INTERVAL = 1.0
# At most this many queued messages are stored in one transaction: the first batch of a
# burst is published (and delivered) while the next one is being stored.
OUTBOX_BATCH = 64
# Loop turns the writer waits for a frame already read to reach the outbox (_gather).
GATHER_IDLE_TURNS = 8
# With Redis hung (comms.bounded), how long the socket waits for a presence or typing
# announcement (then dropped: neither is stored), for its presence entry to be written
# or removed (then the room's list is this worker's own sockets, as when Redis refuses),
# and on disconnect for its messages' publishes (they go on: stored, replayed by id) and
# for its hub subscription's end (the room's last socket on a worker leaves its group).
EPHEMERAL_WAIT_SECONDS = 0.5
PRESENCE_WAIT_SECONDS = 1.0
DRAIN_WAIT_SECONDS = PUBLISH_WAIT_SECONDS
UNSUBSCRIBE_WAIT_SECONDS = 1.0


class TeamRoomConsumer(ClientFramesMixin, RoomDeliveryMixin, AsyncJsonWebsocketConsumer):
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
        # A presence or typing announcement Redis has not answered within its wait: until
        # it has, this socket's next ones are dropped at once (`_ephemeral`).
        self._late_announcement: asyncio.Future | None = None
        # The presence entry's write on join, which a disconnect's removal must follow.
        self._presence_join: asyncio.Future | None = None
        self._publisher = OrderedPublisher()
        self._outbox: list[tuple[str, str | None]] = []
        self._writer: asyncio.Task | None = None
        self._backlog = received_backlog(None)
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
        self._backlog = received_backlog(self._send_live)
        after = self._after_parameter()
        if after is not None:
            # A reconnect: only what came after the client's newest message.
            self.floor = after
            await self._resume(after)
        else:
            await self._join_history()
        tracker = get_tracker()
        self._presence_join = await wait_at_most(
            PRESENCE_WAIT_SECONDS,
            tracker.join(team.slug, self.presence_id, user.pk, user.get_username()),
            what=f"presence join in {team.slug}",
        )
        if self._presence_join.done():
            online = self._presence_join.result()
        else:
            online = tracker.local_online(team.slug)
        await self.send(text_data=_dumps({"type": "presence", "online": online}))
        await self._ephemeral(
            functools.partial(
                presence_announce,
                team_slug=team.slug,
                origin=self.presence_id,
                joined=self.user_json,
            )
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
        # Their publishes are waited for a bounded time (a hung Redis), then go on.
        await wait_at_most(
            DRAIN_WAIT_SECONDS,
            self._publisher.drain(),
            what="the publishes of a closed room socket",
        )
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        # The room's last socket on this worker makes the hub leave the stream's group.
        unsubscribed = await wait_at_most(
            UNSUBSCRIBE_WAIT_SECONDS, self._stack.aclose(), what="a room socket's unsubscribe"
        )
        if unsubscribed.done() and unsubscribed.exception() is not None:
            logger.warning("a room socket's unsubscribe failed: %r", unsubscribed.exception())
        if self.joined:
            self.joined = False
            with contextlib.suppress(Exception):
                online = await self._presence_leave()
                # Another tab (on any worker) keeps the user online: nothing changed.
                if all(user["id"] != self.user_json["id"] for user in online):
                    await self._ephemeral(
                        functools.partial(
                            presence_announce,
                            team_slug=self.team.slug,
                            origin=self.presence_id,
                            left=self.user_json,
                        )
                    )

    async def _presence_leave(self) -> list[dict[str, Any]]:
        """Remove this socket's presence entry; return who is online, within a bounded wait.

        The removal follows the join's write (one still waiting on Redis would
        otherwise land after it and leave a ghost until the TTL). Not done in
        time: this worker's own sockets, as while Redis refuses.
        """
        tracker = get_tracker()
        slug = self.team.slug

        async def leave() -> list[dict[str, Any]]:
            if self._presence_join is not None:
                await asyncio.wait({self._presence_join})
            return await tracker.leave(slug, self.presence_id)

        left = await wait_at_most(PRESENCE_WAIT_SECONDS, leave(), what=f"presence leave in {slug}")
        if left.done():
            return left.result()
        # Maybe still in the local list (the join's write still waits): gone all the same.
        return tracker.local_online(slug, leaving=self.presence_id)

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

    # Posting and ephemeral frames -------------------------------------------------

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
            await self._gather()
            batch = self._outbox[:OUTBOX_BATCH]
            del self._outbox[:OUTBOX_BATCH]
            try:
                results = await messages_post_async(
                    team=self.team, author=self.user, items=batch, publisher=self._publisher
                )
            except NotAllowed:
                refused = len(batch) + len(self._outbox)
                self._outbox.clear()
                if await database_sync_to_async(team_user_can_join)(team=self.team, user=self.user):
                    # Staff reading a room of another team: the socket stays, read-only.
                    for _ in range(refused):
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

    async def _gather(self) -> None:
        """Let the frames the server has already read reach the outbox before a batch.

        A burst's first message would otherwise be stored alone while the rest wait
        behind it. No timer: with nothing read and unhandled (a single message) the
        batch is taken at once; each turn of the loop lets the consumer handle the
        next frame, and it stops when the outbox is full or stops growing.
        """
        idle = 0
        while self._backlog() and len(self._outbox) < OUTBOX_BATCH and idle < GATHER_IDLE_TURNS:
            size = len(self._outbox)
            await asyncio.sleep(0)
            idle = 0 if len(self._outbox) > size else idle + 1

    async def _typing(self) -> None:
        now = time.monotonic()
        if now - self._last_typing < TYPING_MIN_INTERVAL:
            return
        self._last_typing = now
        await self._ephemeral(
            functools.partial(
                typing_announce,
                team_slug=self.team.slug,
                presence_id=self.presence_id,
                user_json=self.user_json,
            )
        )

    async def _ephemeral(self, announce: Callable[[], Awaitable[None]]) -> None:
        """Send a presence or typing announcement; if Redis is away it is dropped, not fatal.

        Neither is stored: a lost one is repaired by the next presence snapshot
        (the heartbeat after recovery) or does not matter (typing). With Redis hung
        the socket waits `EPHEMERAL_WAIT_SECONDS` at most, the announcement going on
        in the background, and drops its next ones at once until Redis has answered
        that one (or redis-py gave up on it), so no frame waits behind them.
        """
        if self._late_announcement is not None and not self._late_announcement.done():
            return
        task = await wait_at_most(
            EPHEMERAL_WAIT_SECONDS, announce(), what=f"presence or typing on {self.team.slug}"
        )
        if not task.done():
            self._late_announcement = task
            logger.warning(
                "presence or typing on %s: no answer from Redis in %g s; this socket's next "
                "ones are dropped until it answers",
                self.team.slug,
                EPHEMERAL_WAIT_SECONDS,
            )
        elif task.exception() is not None:
            logger.warning(
                "presence or typing on %s not sent: %r", self.team.slug, task.exception()
            )
