"""Live delivery and replay of a team room socket, in message id order.

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
from typing import Any

from channels.db import database_sync_to_async

from streams.subscriptions import SubscriberOverflow

from .events import message_json
from .frames import CLOSE_FORBIDDEN, CLOSE_TOO_SLOW, _dumps
from .selectors import message_after, message_history, team_user_can_join
from .wire import event_frame

RESUME_CHUNK = 500
# How long a live message waits for the room's earlier one before the gap is read
# from the store (another worker's publish is normally milliseconds behind).
LATE_MESSAGE_WAIT = 0.5
# At most this many queued events are taken at once (and their frames joined in one write).
WRITE_BATCH = 256


class RoomDeliveryMixin:
    """The sending half of `TeamRoomConsumer`: history, resume and live messages.

    The state (`sent_low`, `floor`, `_held`, `_sent_below`, `_replay_lock`) is set
    up in the consumer's `__init__`.
    """

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
                # Everything queued with it (a sender's batch arrives as one hub message):
                # the messages among them in id order are written to the socket at once.
                events = [event]
                while len(events) < WRITE_BATCH and (more := self.sub.get_nowait()) is not None:
                    events.append(more)
                if self._replay_lock.locked():
                    async with self._replay_lock:
                        await self._deliver_all(events)
                else:
                    await self._deliver_all(events)
        except SubscriberOverflow:
            if self.sub.reason == "resync":
                await self._error("resync", "Live delivery was interrupted; reconnect and resume.")
            else:
                await self._error("too_slow", "This socket fell behind; reconnect and resume.")
            await self._close(CLOSE_TOO_SLOW)

    async def _deliver_all(self, events: list[dict[str, Any]]) -> None:
        """Deliver events in order; consecutive in-order messages leave in one write."""
        ready: list[dict[str, Any]] = []
        for event in events:
            if (
                not self._held
                and event.get("event") == "message"
                and event["id"] > self.floor
                and event.get("prev", 0) <= self.floor
            ):
                # Counted as sent before the await, so a resume meanwhile does not repeat it.
                self.floor = event["id"]
                ready.append(event)
                continue
            if ready:
                await self._send_messages(ready)
                ready = []
            await self._deliver(event)
        if ready:
            await self._send_messages(ready)

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
        """Send one message event (see `_send_messages`)."""
        await self._send_messages([event])

    async def _send_messages(self, events: list[dict[str, Any]]) -> None:
        """The hot path (every delivery): the events' frames, built once per process.

        Under uvicorn the frames go to the transport in one write (one send syscall
        for a whole batch instead of one per frame); otherwise each through ASGI.
        """
        write = self._write_raw
        if write is not None:
            if len(events) == 1:
                data = event_frame(events[0])
            else:
                data = b"".join([event_frame(event) for event in events])
            if write(data):
                return
        for event in events:
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
