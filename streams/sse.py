"""Server-Sent Events over the hub: wire format, resume by id, heartbeat, cut-off.

The only module that writes `text/event-stream` text. It knows nothing of
rovers or telemetry: a hub event is `{"event": name, "id": int | None,
"data": str}` and the caller names the one event whose ids are resumable.

`event_stream` is the one generator behind every live feed. It subscribes to
the hub stream FIRST, then replays what the store holds after the client's
last id, then goes live, skipping live events whose id it already sent; that
order leaves no gap and no duplicate at the seam. The resumable event's ids
are consecutive in commit order, so a live event that arrives before its
predecessor (two workers publishing) waits for it, and a predecessor that
never arrives (a lost publish) is read from the store. A subscriber that falls
behind gets a final `event: overflow` and the response ends; the browser's
EventSource reconnects with Last-Event-ID and replays from the store. After a
Redis outage the hub cuts subscribers off the same way (data reason "resync");
while Redis is away a stream still opens, replays, and waits with heartbeats.
A client that leaves cancels the generator (`streams.handoff` raises CancelledError at
its current await) and the `async with` releases the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from asgiref.sync import SyncToAsync, sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from django.http import HttpRequest, StreamingHttpResponse

from mission_control.parsing import INT64_MAX, BadParameter, parse_int
from streams.direct_write import body_writer, chunk
from streams.handoff import handoff_response
from streams.heartbeats import heartbeats
from streams.hub import subscribe
from streams.subscriptions import SubscriberOverflow, Subscription

Event = dict[str, Any]
# replay(after_id) -> the next page of stored events with id > after_id, in id order.
Replay = Callable[[int], Awaitable[list[Event]]]
# initial() -> the events a first connect starts with, and the last id they stand for
# (the stream's position: live events after it follow), or None when unknown.
Initial = Callable[[], Awaitable[tuple[list[Event], int | None]]]
# missed(after_id) -> the stored events of other kinds (no id) a client resuming after
# after_id may have missed; sent once, before the replay. Clients keep them by their own key.
Missed = Callable[[int], Awaitable[list[Event]]]
R = TypeVar("R")

HEARTBEAT = b": heartbeat\n\n"
OVERFLOW_DATA = (
    '{"reason":"too_slow","detail":"This client fell behind the live stream. '
    'Reconnect with Last-Event-ID to catch up from the store."}'
)


class LastEventIdInvalid(BadParameter):
    """The Last-Event-ID header or ?last_event_id= is not an integer from 0 to 2**63 - 1."""


def sse_encode(event: Event) -> bytes:
    """Return an event in the text/event-stream wire format (id only when not None)."""
    lines = []
    if event.get("id") is not None:
        lines.append(f"id: {event['id']}")
    if event.get("event"):
        lines.append(f"event: {event['event']}")
    data = event.get("data", "")
    # A data value with line breaks becomes several data lines; EventSource joins them.
    lines.extend(f"data: {line}" for line in str(data).splitlines() or [""])
    return ("\n".join(lines) + "\n\n").encode()


def sse_retry(milliseconds: int) -> bytes:
    """Return the `retry:` field that sets how long EventSource waits before reconnecting."""
    return f"retry: {milliseconds}\n\n".encode()


OVERFLOW = sse_encode({"event": "overflow", "id": None, "data": OVERFLOW_DATA})
RESTART_DATA = (
    '{"reason":"server_restart","detail":"This server process is restarting. '
    'Reconnect with Last-Event-ID to resume."}'
)
RESTART = sse_encode({"event": "restart", "id": None, "data": RESTART_DATA})
# The overflow ending when live delivery was interrupted (a Redis outage): the
# browser reconnects with Last-Event-ID and replays what was stored meanwhile.
RESYNC = sse_encode(
    {
        "event": "overflow",
        "id": None,
        "data": '{"reason":"resync","detail":"Live delivery was interrupted. '
        'Reconnect with Last-Event-ID to catch up from the store."}',
    }
)

# Every open stream's subscription in this process, so a shutdown can end them all.
_live: weakref.WeakSet[Subscription] = weakref.WeakSet()
_draining = False


def drain_live_streams() -> None:
    """End every open stream of this process with `event: restart` (the worker stops).

    Called from the worker's SIGTERM handler (mission_control.lifespan): each
    response ends cleanly, so the client's EventSource reconnects at once and
    resumes by Last-Event-ID on a worker that stays, instead of hanging until
    the server's graceful-shutdown timeout cancels it.
    """
    global _draining
    _draining = True
    for subscription in tuple(_live):
        subscription.cut_off("restart")


def _final_event(subscription: Subscription) -> bytes:
    return {"restart": RESTART, "resync": RESYNC}.get(subscription.reason, OVERFLOW)


_shared: OrderedDict[int, tuple[Event, bytes]] = OrderedDict()
SHARED_CACHE_SIZE = 256


def _encode_shared(event: Event) -> bytes:
    """Return sse_encode(event), encoded once per process for all local subscribers.

    The hub hands the same event dict to every local subscriber, so with 1,000
    open streams the bytes are built once, not 1,000 times. Keyed by identity;
    the entry holds the event, so its id cannot be reused while cached.
    """
    key = id(event)
    entry = _shared.get(key)
    if entry is not None and entry[0] is event:
        return entry[1]
    data = sse_encode(event)
    _shared[key] = (event, data)
    if len(_shared) > SHARED_CACHE_SIZE:
        _shared.popitem(last=False)
    return data


# A batch's chunk for idle streams, with its first and last resumable id, or None
# when those ids are not consecutive (then each stream orders them itself).
Batch = tuple[bytes, int | None, int | None] | None
_batches: OrderedDict[tuple[int, str], tuple[list[Event], Batch]] = OrderedDict()
BATCH_CACHE_SIZE = 16


def _encode_batch(events: list[Event], resumable_event: str) -> Batch:
    """Return a hub batch as one HTTP chunk, built once per process for every idle stream.

    The hub hands the same list to every local subscriber; keyed by identity as
    `_encode_shared`, the entry holds the list so its id cannot be reused meanwhile.
    """
    key = (id(events), resumable_event)
    entry = _batches.get(key)
    if entry is not None and entry[0] is events:
        return entry[1]
    ids = [e["id"] for e in events if e.get("event") == resumable_event and e.get("id") is not None]
    batch: Batch = None
    if not ids:
        batch = (chunk(b"".join(map(_encode_shared, events))), None, None)
    elif ids == list(range(ids[0], ids[0] + len(ids))):
        batch = (chunk(b"".join(map(_encode_shared, events))), ids[0], ids[-1])
    _batches[key] = (events, batch)
    if len(_batches) > BATCH_CACHE_SIZE:
        _batches.popitem(last=False)
    return batch


def last_event_id(request: HttpRequest) -> int | None:
    """Return the client's last event id (header first, then ?last_event_id=), or None.

    Raise LastEventIdInvalid (naming the header or the parameter) for anything
    but ASCII digits up to 2**63 - 1, the largest id a database column holds.
    """
    header = request.headers.get("Last-Event-ID")
    if header is not None and header.strip(" \t"):
        name, raw = "Last-Event-ID", header
    else:
        name, raw = "last_event_id", request.GET.get("last_event_id")
    try:
        return parse_int(raw, name=name, maximum=INT64_MAX, header=True)
    except BadParameter as exc:
        raise LastEventIdInvalid(exc.name, exc.detail) from None


class _ResumableOrder:
    """Put a stream's resumable events in id order, each once, filling gaps from the store.

    The ids are consecutive and visible in id order (each is stored and
    committed before it is published, and a store assigns them under a lock
    held until commit). Live delivery may still reorder them (two workers
    publish independently) or drop one (a Redis outage), so an event whose
    predecessor has not arrived is held back; once the gap is older than
    STREAM_GAP_GRACE_SECONDS, everything after the last id sent is read from
    the store, which must hold it. An id at or below the last one sent is a
    duplicate (a replayed event arriving live too, a redelivery) and dropped.
    """

    MAX_HELD = 10_000

    def __init__(self, *, last: int | None, replay: Replay, grace: float) -> None:
        self.last = last  # the last id sent; None: nothing known yet, take the first one
        self.replay = replay
        self.grace = grace
        self.held: dict[int, Event] = {}
        self.deadline: float | None = None

    def accept(self, event: Event, now: float) -> list[Event]:
        """Return the events to send now, in id order (empty when held or a duplicate)."""
        event_id = event["id"]
        if self.last is not None and event_id <= self.last:
            return []
        if self.last is not None and event_id != self.last + 1:
            self.held[event_id] = event
            if self.deadline is None:
                self.deadline = now + self.grace
            if len(self.held) > self.MAX_HELD:
                self.deadline = now
            return []
        self.last = event_id
        ready = [event]
        while self.last + 1 in self.held:
            self.last += 1
            ready.append(self.held.pop(self.last))
        # What is still held waits on a later gap: give that one its own grace.
        self.deadline = now + self.grace if self.held else None
        return ready

    def overdue(self, now: float) -> bool:
        return self.deadline is not None and now >= self.deadline

    def wait(self, now: float, heartbeat: float) -> float:
        """Return how long to wait for the next event before a heartbeat or a gap fill."""
        if self.deadline is None:
            return heartbeat
        return max(0.0, min(heartbeat, self.deadline - now))

    async def catch_up(self) -> AsyncIterator[Event]:
        """Yield every stored event after the last id sent, in pages, in id order."""
        while True:
            page = await self.replay(self.last if self.last is not None else -1)
            if not page:
                return
            for event in page:
                self.last = event["id"]
                yield event

    async def fill(self) -> AsyncIterator[Event]:
        """Yield the missing events from the store, then the held ones still unsent."""
        async for event in self.catch_up():
            yield event
        held, self.held, self.deadline = self.held, {}, None
        # The store had everything up to the newest id (unless pruned meanwhile):
        # what is still held comes after it, in order, gaps accepted.
        for event_id in sorted(held):
            if self.last is None or event_id > self.last:
                self.last = event_id
                yield held[event_id]


async def event_stream(
    *,
    stream: str,
    resumable_event: str,
    after: int | None,
    replay: Replay,
    initial: Initial | None = None,
    missed: Missed | None = None,
) -> AsyncIterator[bytes]:
    """Yield the SSE bytes of a hub stream, replaying stored events after `after` first.

    `resumable_event` names the event whose ids are the stored, consecutive ids
    (in commit order) that `replay` pages through and Last-Event-ID refers to
    (e.g. "telemetry", whose id is the frame's ingest id). `after=None` (a first
    connect) sends what `initial()` returns (e.g. the newest frame, so a
    dashboard shows a state at once) and continues after the position it
    names. Live resumable events are sent in id order, each once: duplicates
    are dropped, an early one waits for the ids before it, and a gap that lasts
    is filled from the store (`_ResumableOrder`), so Last-Event-ID resume is
    exact. Every other event (alarms, images) and any event without an id
    always passes at once; on a resume, `missed(after)` first sends those of
    them the client may have missed meanwhile (read after subscribing, so
    nothing falls between it and live delivery).
    """
    heartbeat = settings.SSE_HEARTBEAT_SECONDS
    clock = asyncio.get_running_loop().time
    beats = heartbeats()
    raw_write = body_writer.get()

    def write_now(events: list[Event]) -> bool:
        """Write a batch straight to the client while this stream waits (see Subscription)."""
        batch = _encode_batch(events, resumable_event)
        if batch is None:
            return False
        data, first, last = batch
        if first is not None and order.last is not None and first != order.last + 1:
            return False  # a duplicate or a gap: `order` decides, in this task
        if not raw_write(data):
            return False
        if last is not None:
            order.last = last
        beats.sent(subscription)
        return True

    async with subscribe(stream) as subscription, beats.streaming():
        _live.add(subscription)
        if _draining:
            subscription.cut_off("restart")
        # Sent once subscribed: a client that has read it misses nothing published later.
        yield sse_retry(settings.SSE_RETRY_MS)
        order = _ResumableOrder(last=after, replay=replay, grace=settings.STREAM_GAP_GRACE_SECONDS)
        if after is None:
            events, position = await initial() if initial is not None else ([], None)
            for event in events:
                yield sse_encode(event)
            order.last = position
        else:
            for event in await missed(after) if missed is not None else []:
                yield sse_encode(event)
            async for event in order.catch_up():
                yield sse_encode(event)
        while True:
            if order.overdue(clock()):
                async for event in order.fill():
                    yield sse_encode(event)
            try:
                event = subscription.get_nowait()
                if event is None:
                    if order.deadline is None:
                        # No timer of its own: the loop's one ticker nudges idle streams.
                        # While it waits, the hub may write events to it without waking it.
                        subscription.writer = write_now if raw_write is not None else None
                        try:
                            await beats.wait(subscription)
                        finally:
                            subscription.writer = None
                    else:
                        # Events held behind a gap: wake in time to fill it from the store.
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(order.wait(clock(), heartbeat)):
                                await subscription.wait()
                    event = subscription.get_nowait()
                    if event is None:  # nudged, or the gap's wait ran out
                        if not order.overdue(clock()):
                            yield HEARTBEAT
                        continue
            except SubscriberOverflow:
                yield _final_event(subscription)
                return
            # Everything already queued leaves in one chunk: under a burst that is one
            # trip through Django and the server instead of one per event.
            chunk: list[bytes] = []
            overflowed = False
            now = clock()
            while event is not None:
                if event.get("event") != resumable_event or event.get("id") is None:
                    chunk.append(_encode_shared(event))
                else:
                    chunk.extend(map(_encode_shared, order.accept(event, now)))
                try:
                    event = subscription.get_nowait()
                except SubscriberOverflow:
                    overflowed = True
                    break
            if chunk:
                yield chunk[0] if len(chunk) == 1 else b"".join(chunk)
            if overflowed:
                yield _final_event(subscription)
                return


async def release_request_thread() -> None:
    """Give back the database connection and the thread Django holds for this request.

    Django serves each ASGI request inside asgiref's ThreadSensitiveContext: the
    first sync call (request_started, the token or session lookup) starts a
    worker thread, with its own database connection, that lives until the
    response ends. For a stream open for hours that is one idle thread and one
    connection per dashboard (measured: ~88 KiB RSS per subscriber, and
    PostgreSQL's max_connections reached at ~100 dashboards). Close the
    connection in that thread, then retire the thread; a later sync call in
    this request (request_finished) starts a fresh one that Django's context
    exit cleans up as usual. Reads the stream needs go to the shared pool.
    """
    await sync_to_async(connections.close_all)()
    try:
        context = SyncToAsync.thread_sensitive_context.get()
    except LookupError:
        return
    executor = SyncToAsync.context_to_thread_executor.pop(context, None)
    if executor is not None:
        executor.shutdown(wait=False)


def _pooled_call(function: Callable[..., R], kwargs: dict[str, Any]) -> R:
    close_old_connections()
    try:
        return function(**kwargs)
    finally:
        close_old_connections()


async def stream_query(function: Callable[..., R], **kwargs: Any) -> R:
    """Run a read for a live stream on the shared thread pool, not the request's thread.

    Django gives each ASGI request its own thread (and so its own database
    connection) until the response ends; for a stream that lasts hours that
    would pin one connection per open dashboard (see release_request_thread).
    Reads from the stream use the loop's bounded pool instead, with Django's
    usual connection-age handling before and after each read.
    """
    return await sync_to_async(_pooled_call, thread_sensitive=False)(function, kwargs)


def sse_response(request: HttpRequest, events: AsyncIterator[bytes]) -> StreamingHttpResponse:
    """Return the streaming response of an SSE generator with the headers proxies need.

    Served through `mission_control.asgi`, the stream is written outside Django once
    the headers are sent (`streams.handoff`): an idle stream then holds no request.
    """
    response = handoff_response(request, events, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    # nginx must not buffer the stream (django-eventstream#37).
    response["X-Accel-Buffering"] = "no"
    # Never compressed: no compressing middleware is installed, and a compressor would
    # hold events in its buffer (Django ticket #36293); the tests check the header is absent.
    return response
