"""The one publish/subscribe module: a per-process fan-out over the channel layer.

Only services publish. A stored write is announced through one of three doors
that log a failed publish instead of raising it (the data is stored, clients
replay it by id, so a Redis outage must not fail the write): `publish_on_commit`
from synchronous code once the transaction commits, `publish_stored` from async
code after the write, and an `OrderedPublisher` for one sender's events in order.
What is never stored (presence, typing) goes through `publish`, and a failure
raises. All of them end in `Hub.publish_many`, which sends to the channel-layer
group of the stream, whose members are worker processes, not browsers. Each
process holds one channel-layer channel, joins a stream's group while at least
one local subscriber wants it, and copies every event into its local
subscribers' bounded queues (`streams.subscriptions`). A subscriber that
falls behind is cut off (`SubscriberOverflow`) rather than silently skipped; it
resumes from the store by id.

Over Redis, losing Redis loses nothing stored: every event is numbered per
stream together with an epoch (one per Redis run of the counter), so a receiver
notices a gap, or a counter that started again; a lost pub/sub connection is
reported by the layer's reconnect hook. Either way the hub resubscribes, proves
its subscription works with a probe, and only then cuts its local subscribers
off, so they replay from the database by id everything stored meanwhile. A
publish that failed makes every worker do the same once Redis answers.

Over Redis, a process's own subscribers get its events once Redis has answered
the publish, not after the copy Redis sends back to this process
(`Hub.publish_many`); that copy still counts for the gap tracker but is not
delivered again. Other processes get it through Redis as before.

Events are plain dicts that msgpack can carry, built in each app's `events.py`
with their JSON text encoded once for every subscriber.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.db import transaction

from . import layers, metrics
from .gaps import GapTracker
from .layers import ReportingPubSubChannelLayer, group_name, hub_layer
from .per_loop import PerLoop
from .recovery import OutageRecovery
from .subscriptions import Subscription

logger = logging.getLogger(__name__)

HUB_MESSAGE_TYPE = "hub.event"
# channels-redis forgets group members after `group_expiry` (a day by default);
# a long-lived subscription re-joins well before that.
GROUP_REFRESH_SECONDS = 3600.0
# Own messages published and not back from Redis yet, at most. One that never comes
# back (lost in an outage) is forgotten after this many later ones.
EARLY_KEPT = 4096
# How long an HTTP request announcing a stored write (an ingest and its alarms, an
# alarm acknowledged, an image uploaded) waits for its publishes in all before it
# answers anyway (`publish_wait_bounded`, `streams.middleware`).
PUBLISH_WAIT_SECONDS = 2.0


class Hub(OutageRecovery):
    """One process's (one event loop's) member of the channel layer."""

    def __init__(self) -> None:
        self.layer = hub_layer()
        self._subscribers: dict[str, set[Subscription]] = {}
        # Streams whose group this process has joined (when), for the streams wanted
        # (those with subscribers). A join that failed (Redis away) is retried.
        self._joined: dict[str, float] = {}
        self._channel: str | None = None
        self._reader: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._wake = asyncio.Event()
        # Guards only the reader and its channel (`_ensure_reader`): never held
        # across another Redis call, so one stream's hung call holds up no other.
        self._lock = asyncio.Lock()
        # Per stream: the channel its group holds (Redis answered the join and no
        # leave since), and the lock with its holders and waiters (`_membership`).
        self._in_group: dict[str, str] = {}
        self._stream_locks: dict[str, list] = {}
        self._gaps: dict[str, GapTracker] = {}
        # stream -> (token, when last sent): a probe this hub waits for before it
        # cuts the stream's subscribers off after a reconnect or a late join.
        self._probes: dict[str, tuple[str, float | None]] = {}
        # Streams where a publish from this process failed: a resync is owed.
        self._unpublished: set[str] = set()
        self._resyncer: asyncio.Task | None = None
        # Over Redis, events are numbered per stream so lost ones are noticed.
        self._numbered = isinstance(self.layer, ReportingPubSubChannelLayer)
        # Own messages in flight, by origin token, until they come back through Redis:
        # True once delivered to local subscribers (then only numbered, not again).
        self._origin = uuid.uuid4().hex
        self._origins = itertools.count(1)
        self._early: OrderedDict[str, bool] = OrderedDict()
        # Shards (indexes; None: all) between their pub/sub connection's loss and
        # return (streams.recovery); own delivery waits while any is away.
        self._pubsub_down: set[int | None] = set()
        with contextlib.suppress(RuntimeError):  # no running loop: nothing to tell
            layers.listen(self)

    @property
    def local_subscriber_count(self) -> int:
        return sum(len(subs) for subs in self._subscribers.values())

    async def publish(self, stream: str, event: dict[str, Any]) -> None:
        """Send an event to every subscriber of the stream in every process."""
        await self.publish_many(stream, [event])

    async def publish_many(self, stream: str, events: list[dict[str, Any]]) -> None:
        """Send several events, in order, as one message.

        Subscribers receive them in the same turn of the event loop, so a batch
        (a telemetry downlink of many frames) wakes each subscriber once, not once
        per event. When sending fails (Redis away), the error is raised and a
        resync of the stream is sent once Redis answers again (see `_resync_later`).

        Over Redis this process's own subscribers get the events as soon as
        Redis has answered the publish, without waiting for the copy Redis
        sends back to this process's reader (README, "Where a frame's time
        goes"). Not sooner: until Redis answers, the message may not be
        published at all, and writing 1,000 local streams before the publish
        is on the wire would delay every other process's subscribers by that
        long. The message carries an origin token: when the copy comes back,
        the dispatch numbers it (gaps, duplicates) and does not deliver it
        again; if the copy comes back first, it is delivered then and not
        again here. A failed publish is delivered nowhere, as before.
        """
        if not events:
            return
        metrics.EVENTS_PUBLISHED.labels(metrics.stream_kind(stream)).inc(len(events))
        message = {"type": HUB_MESSAGE_TYPE, "stream": stream, "events": events}
        if not self._numbered:
            await self.layer.group_send(group_name(stream), message)
            return
        origin = None
        if self._delivers_own(stream):
            origin = message["o"] = f"{self._origin}.{next(self._origins)}"
            self._early[origin] = False
            if len(self._early) > EARLY_KEPT:
                self._early.popitem(last=False)
        try:
            # Numbered and published in one round trip (see streams.layers).
            await self.layer.group_send_numbered(group_name(stream), message)
        except Exception:
            if origin is not None:
                self._early.pop(origin, None)
            self._resync_later(stream)
            raise
        if origin is not None:
            # In the loop's next turn, as the reader would: the publisher goes on (an
            # ingest hands its alarms to its thread) while the streams are written.
            asyncio.get_running_loop().call_soon(self._deliver_own, origin, stream, events)

    def _delivers_own(self, stream: str) -> bool:
        """Whether own events of `stream` go to local subscribers without their copy.

        Not while this process's live path is broken (pub/sub lost, or back and
        the stream's probe not yet home): its subscribers are owed a resync, and
        an event of ours delivered meanwhile would be read past the cut-off.
        """
        return (
            bool(self._subscribers.get(stream))
            and stream in self._joined
            and stream not in self._probes
            and not self._pubsub_down
        )

    def _deliver_own(self, origin: str, stream: str, events: list[dict[str, Any]]) -> None:
        """Deliver an own message to local subscribers unless its copy from Redis came first.

        Left to the copy if the live path broke since the publish (see `_delivers_own`).
        """
        if self._early.get(origin) is False and self._delivers_own(stream):
            self._early[origin] = True
            self._deliver(stream, events)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, stream: str, *, maxsize: int | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a stream for the duration of the block.

        Once the block is entered, every event published afterwards is queued, so
        a caller can subscribe first and then replay from the store without a gap.
        While Redis is away the subscription still opens (a client can replay and
        wait); once the hub has joined the stream's group again it cuts the
        subscriber off (reason "resync") so it replays what it missed.
        """
        sub = Subscription(stream, maxsize or settings.STREAM_SUBSCRIBER_QUEUE)
        await self._add(sub)
        try:
            yield sub
        finally:
            # Shielded so a cancelled (disconnected) client still leaves cleanly.
            await asyncio.shield(self._remove(sub))

    async def _add(self, sub: Subscription) -> None:
        stream = sub.stream
        subs = self._subscribers.setdefault(stream, set())
        subs.add(sub)
        metrics.LOCAL_SUBSCRIBERS.labels(sub.kind).inc()
        if stream in self._joined:
            return  # joined, and no leave of the stream pending: no Redis call
        self._gaps.setdefault(stream, GapTracker(settings.STREAM_GAP_GRACE_SECONDS))
        try:
            await self._settle(stream)
        except Exception as exc:
            if not self._numbered:
                subs.discard(sub)
                metrics.LOCAL_SUBSCRIBERS.labels(sub.kind).dec()
                raise
            logger.warning("cannot join stream %s now (%r); retrying", stream, exc)
            self._ensure_watchdog()

    async def _settle(self, stream: str) -> None:
        """Make the stream's group membership match its local subscribers (raises if a join fails).

        One stream's joins and leaves wait for each other, first come first served
        (`_membership`), and for no other stream's: with Redis hung, a leave's
        discard holds up only that stream. Each round looks again at what is
        wanted now, so a join never overtakes an earlier leave and a leave never
        undoes a later join. `_joined` is set only here, once the group holds the
        reader's current channel and subscribers want it, and dropped the moment
        the last subscriber goes: a subscriber finding it set needs no Redis call.
        """
        async with self._membership(stream):
            while True:
                member = self._in_group.get(stream)
                if self._subscribers.get(stream):
                    if member is not None and member == self._channel:
                        self._joined.setdefault(stream, asyncio.get_running_loop().time())
                        return
                    if member is not None:
                        # Joined with a channel whose reader has stopped since.
                        await self._discard(stream, member)
                        continue
                    await self._join(stream)
                elif member is None:
                    return
                else:
                    await self._discard(stream, member)

    @contextlib.asynccontextmanager
    async def _membership(self, stream: str) -> AsyncIterator[None]:
        """Hold the stream's own lock (FIFO), forgotten once nobody holds or waits for it."""
        entry = self._stream_locks.get(stream)
        if entry is None:
            entry = self._stream_locks[stream] = [asyncio.Lock(), 0]
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if not entry[1]:
                del self._stream_locks[stream]

    def _settling(self, stream: str) -> bool:
        """Whether a join or leave of the stream is under way or waiting."""
        return stream in self._stream_locks

    async def _join(self, stream: str) -> None:
        async with self._lock:
            await self._ensure_reader()
            channel = self._channel
        await self.layer.group_add(group_name(stream), channel)
        self._in_group[stream] = channel

    async def _discard(self, stream: str, channel: str) -> None:
        try:
            await self.layer.group_discard(group_name(stream), channel)
        except Exception as exc:
            # Redis away: the subscription ends with the connection anyway.
            logger.warning("cannot leave stream %s (%r)", stream, exc)
        self._in_group.pop(stream, None)

    async def _remove(self, sub: Subscription) -> None:
        stream = sub.stream
        subs = self._subscribers.get(stream)
        if subs is None:
            return
        if sub in subs:
            subs.discard(sub)
            metrics.LOCAL_SUBSCRIBERS.labels(sub.kind).dec()
        if subs:
            return
        del self._subscribers[stream]
        self._joined.pop(stream, None)
        self._gaps.pop(stream, None)
        self._probes.pop(stream, None)
        if not self._subscribers:
            self._stop_reading()
        # The discard waits behind this stream's own joins and leaves only.
        try:
            await self._settle(stream)
        except Exception as exc:
            # A subscriber came back meanwhile and the join for it failed (Redis away).
            logger.warning("cannot join stream %s now (%r); retrying", stream, exc)
            if self._subscribers:
                self._ensure_watchdog()

    def _stop_reading(self) -> None:
        """Nothing local listens any more: stop reading until someone does."""
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        if self._reader is not None:
            # Not awaited: channels-redis may finish its blocking pop first,
            # and a leaving client must not wait for that.
            reader, self._reader = self._reader, None
            reader.cancel()
            # The pub/sub layer drops a channel whose receive was cancelled; a stream
            # still in a group with it is discarded by its `_settle`.
            self._channel = None

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        if self._channel is None:
            self._channel = await self.layer.new_channel("hub.")
        self._reader = asyncio.get_running_loop().create_task(self._read_forever())
        self._ensure_watchdog()

    def _ensure_watchdog(self) -> None:
        if self._numbered and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = asyncio.get_running_loop().create_task(self._watch())

    async def _read_forever(self) -> None:
        me = asyncio.current_task()
        while self._reader is me:
            try:
                message = await self.layer.receive(self._channel)
            except asyncio.CancelledError:
                raise
            except Exception:
                if self._reader is not me or me.cancelling():
                    # redis-py may turn our own cancellation into a TimeoutError:
                    # never swallow it, or the task outlives its event loop.
                    return
                # A Redis outage: whatever was in flight is gone, so every local
                # subscriber is cut off to resume from the store by id.
                logger.exception("fan-out receive failed; retrying")
                for stream in tuple(self._subscribers):
                    self.cut_off_stream(stream)
                await asyncio.sleep(0.5)
                await self._rejoin_all()
                continue
            # Dispatched even by a reader being replaced: the message is off Redis now.
            self._dispatch(message)
            await self._refresh_groups()

    def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") != HUB_MESSAGE_TYPE:
            self._dispatch_control(message)
            return
        stream = message["stream"]
        tracker = self._gaps.get(stream)
        epoch = message.get("e")
        # Unnumbered: in-memory layer, or (during a rolling upgrade) an older worker
        # numbering with another counter; its numbers must not be mixed with ours.
        if tracker is not None and epoch is not None:
            number = message["n"]
            if tracker.restarted(epoch):
                logger.warning("stream %s numbering restarted (Redis lost its data)", stream)
                self.cut_off_stream(stream, reason="resync", reset=False)
            if not tracker.seen(number, asyncio.get_running_loop().time(), epoch):
                return  # a duplicate delivery (channels-redis#299)
        if self._early.pop(message.get("o"), False):
            return  # our own, delivered to local subscribers when it was published
        self._deliver(stream, message["events"])

    def _deliver(self, stream: str, events: list[dict[str, Any]]) -> None:
        queued = 0
        for sub in tuple(self._subscribers.get(stream, ())):
            queued += sub.deliver(events)
        if queued:
            metrics.EVENTS_DELIVERED.labels(metrics.stream_kind(stream)).inc(queued * len(events))

    def cut_off_stream(self, stream: str, *, reason: str = "too_slow", reset: bool = True) -> None:
        """Cut off every local subscriber of a stream; they resume from the store by id."""
        for sub in tuple(self._subscribers.get(stream, ())):
            sub.cut_off(reason)
        if reset and stream in self._gaps:
            self._gaps[stream] = GapTracker(settings.STREAM_GAP_GRACE_SECONDS)

    async def _refresh_groups(self) -> None:
        now = asyncio.get_running_loop().time()
        for stream, joined in tuple(self._joined.items()):
            if now - joined > GROUP_REFRESH_SECONDS:
                await self.layer.group_add(group_name(stream), self._channel)
                self._joined[stream] = now

    async def _rejoin_all(self) -> None:
        with contextlib.suppress(Exception):
            for stream in tuple(self._joined):
                await self.layer.group_add(group_name(stream), self._channel)


_hubs = PerLoop(Hub)


def get_hub() -> Hub:
    """Return this event loop's hub (one per worker process in production)."""
    return _hubs.get()


async def publish(stream: str, event: dict[str, Any]) -> None:
    """Publish an event on a stream; see Hub.publish."""
    await get_hub().publish(stream, event)


async def publish_many(stream: str, events: list[dict[str, Any]]) -> None:
    """Publish several events on a stream as one message; see Hub.publish_many."""
    await get_hub().publish_many(stream, events)


def subscribe(stream: str, *, maxsize: int | None = None):
    """Subscribe to a stream; see Hub.subscribe."""
    return get_hub().subscribe(stream, maxsize=maxsize)


def publish_from_sync(stream: str, event: dict[str, Any]) -> None:
    """Publish from synchronous code in a thread without an event loop (raises on failure)."""
    async_to_sync(publish)(stream, event)


def publish_on_commit(stream: str, event: dict[str, Any]) -> None:
    """Publish an event once the current transaction commits (at once outside one).

    The one way synchronous services publish. A failed publish is logged, not
    raised: the write it announces is committed, and clients get it from the
    store (history, `Last-Event-ID`, `resume`).
    """
    transaction.on_commit(lambda: _publish_now(stream, event))


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
        if loop is None and _publish_wait.get() is not None:
            # Inside `publish_wait_bounded` (an HTTP request, `streams.middleware`): the
            # wait is bounded by what is left of the request's, the publish may outlive it.
            async_to_sync(publish_stored)(stream, [event])
        elif loop is None:
            publish_from_sync(stream, event)
        else:
            task = loop.create_task(publish_stored(stream, [event]))
            _pending.add(task)
            task.add_done_callback(_pending.discard)
    except Exception:
        # Stored already: clients get it from history, `Last-Event-ID` or `resume`.
        logger.exception("publishing on %s failed", stream)


# Scheduled publishes, referenced until done so the event loop cannot drop them.
_pending: set[asyncio.Task] = set()


class PublishWait:
    """How long publishes of stored data may still hold up a request, in all.

    The clock starts at the first publish that waits, not when the request
    begins: an upload that took a minute to arrive still waits for its
    announcement, and once Redis answers normally nothing changes.
    """

    __slots__ = ("deadline", "seconds")

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline: float | None = None

    def remaining(self) -> float:
        """Return the seconds left to wait (starting the clock on the first call)."""
        now = time.monotonic()
        if self.deadline is None:
            self.deadline = now + self.seconds
        return max(0.0, self.deadline - now)


_publish_wait: ContextVar[PublishWait | None] = ContextVar("publish_wait", default=None)


@contextlib.contextmanager
def publish_wait_bounded(seconds: float | None = None) -> Iterator[None]:
    """Within the block, publishes of stored data wait for Redis `seconds` in all at most.

    For a request that announces what it stored (every HTTP request through
    `streams.middleware`: an ingest, an alarm acknowledged, an image uploaded,
    an admin's room message): with Redis hung (connections open, nothing
    answered) each publish would wait until redis-py gives up, one after
    another, and the client gives up or retries long before the answer comes.
    Past the bound the publish goes on in the background (kept referenced); if
    it fails, the hub's resync makes subscribers replay from the store
    (`Hub._resync_later`). The context variable follows the request into
    `sync_to_async` threads and their `async_to_sync` publishes
    (`publish_on_commit`), so the bound covers the whole request. Only where an
    event loop outlives the caller (a server's): a loop of its own made by
    `async_to_sync` would cancel the publish left running when it ends.
    """
    wait = PUBLISH_WAIT_SECONDS if seconds is None else seconds
    token = _publish_wait.set(PublishWait(wait))
    try:
        yield
    finally:
        _publish_wait.reset(token)


async def publish_stored(stream: str, events: list[dict[str, Any]]) -> None:
    """Publish events whose data is stored already; log a failure instead of raising it.

    Inside `publish_wait_bounded`, return at its bound even if Redis has not
    answered; the publish goes on in the background. Order holds: every publish
    of a stream goes through its shard's connection lock (`streams.layers`),
    which is first come, first served, so a later publish waits behind one that
    is stuck instead of overtaking it, and nothing is numbered or delivered twice.
    """
    bound = _publish_wait.get()
    if bound is None:
        await _publish_logged(stream, events)
        return
    task = asyncio.get_running_loop().create_task(_publish_logged(stream, events))
    _pending.add(task)
    task.add_done_callback(_pending.discard)
    # asyncio.wait does not cancel the task on timeout, nor when this request is.
    done, _ = await asyncio.wait({task}, timeout=bound.remaining())
    if not done:
        logger.warning(
            "Redis has not answered the publish on %s yet; it goes on in the background", stream
        )


async def _publish_logged(stream: str, events: list[dict[str, Any]]) -> None:
    try:
        await publish_many(stream, events)
    except Exception:
        # Stored already: clients get it from history, `Last-Event-ID` or `resume`.
        logger.exception("publishing %d event(s) on %s failed", len(events), stream)


class OrderedPublisher:
    """Publish a sender's events in order without waiting for each Redis round trip.

    A socket sending back to back stores message n+1 while message n is still on its
    way; each publish starts only after the previous one finished, so order holds.
    A failed publish is logged: the event's data is stored, clients replay it by id.
    """

    def __init__(self) -> None:
        self._tail: asyncio.Task | None = None

    def publish(self, stream: str, event: dict[str, Any]) -> None:
        """Publish an event on `stream` after everything handed over before it."""
        self.publish_many(stream, [event])

    def publish_many(self, stream: str, events: list[dict[str, Any]]) -> None:
        """Publish events, in order and as one message, after everything handed over before."""
        if not events:
            return
        previous = self._tail
        self._tail = asyncio.get_running_loop().create_task(self._after(previous, stream, events))

    async def _after(self, previous: asyncio.Task | None, stream: str, events: list) -> None:
        if previous is not None:
            await asyncio.wait([previous])
        await publish_stored(stream, events)

    async def drain(self) -> None:
        """Wait until everything handed over so far is published."""
        if self._tail is not None:
            await asyncio.wait([self._tail])
