"""The one publish/subscribe module: a per-process fan-out over the channel layer.

Publishers call `publish(stream, event)`; it goes to the channel-layer group of
that stream, whose members are worker processes, not browsers. Each process
holds one channel-layer channel, joins a stream's group while at least one local
subscriber wants it, and copies every event into its local subscribers' bounded
queues. A subscriber that falls behind is cut off (`SubscriberOverflow`) rather
than silently skipped; it resumes from the store by id.

Events are plain dicts that msgpack can carry. Encode expensive payloads (JSON
text) once before publishing so every subscriber reuses the same string.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import weakref
from collections.abc import AsyncIterator
from typing import Any

from channels import DEFAULT_CHANNEL_LAYER
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.conf import settings

from . import metrics

logger = logging.getLogger(__name__)

HUB_MESSAGE_TYPE = "hub.event"
# channels-redis forgets group members after `group_expiry` (a day by default);
# a long-lived subscription re-joins well before that.
GROUP_REFRESH_SECONDS = 3600.0
_GROUP_UNSAFE = re.compile(r"[^a-zA-Z0-9_.-]")


def _hub_layer():
    """Return the channel layer the hub publishes and subscribes through.

    With Redis the hub uses channels-redis' pub/sub layer: one PUBLISH per event
    and one SUBSCRIBE per stream per process is exactly the fan-out wanted, its
    receive is cancellable at once, and it keeps one connection per event loop.
    It is at-most-once across a Redis reconnect, which the store-then-publish
    design covers: clients replay from the database by id. Without Redis the
    shared in-memory layer serves the single process.
    """
    layer = get_channel_layer()
    if isinstance(layer, InMemoryChannelLayer):
        return layer
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    key = (tuple(map(str, config.get("hosts", ()))), config.get("prefix", "asgi"))
    if key not in _pubsub_layers:
        _pubsub_layers[key] = RedisPubSubChannelLayer(
            hosts=config.get("hosts"), prefix=config.get("prefix", "asgi")
        )
    return _pubsub_layers[key]


_pubsub_layers: dict[tuple, RedisPubSubChannelLayer] = {}


class _RedisCounter:
    """Numbers each stream's events with one INCR, so subscribers can see a gap."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio

        self.redis = redis.asyncio.Redis.from_url(url)
        self.prefix = prefix

    async def next(self, stream: str) -> int:
        return await self.redis.incr(f"{self.prefix}hub.n.{stream}")


def _redis_counter(layer) -> _RedisCounter | None:
    if not isinstance(layer, RedisPubSubChannelLayer):
        return None
    config = settings.CHANNEL_LAYERS[DEFAULT_CHANNEL_LAYER].get("CONFIG", {})
    host = config.get("hosts", ["redis://127.0.0.1:6379"])[0]
    url = host if isinstance(host, str) else host.get("address")
    return _RedisCounter(url, config.get("prefix", "asgi"))


class SubscriberOverflow(Exception):
    """The subscriber's queue filled up: it must reconnect and replay from the store."""


def group_name(stream: str) -> str:
    """Return the channel-layer group for a stream name like 'telemetry.curiosity'."""
    return "hub." + _GROUP_UNSAFE.sub("_", stream)[:90]


class Subscription:
    """A local subscriber's bounded queue of events from one stream."""

    def __init__(self, stream: str, maxsize: int) -> None:
        self.stream = stream
        self.kind = metrics.stream_kind(stream)
        self.maxsize = maxsize
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event without waiting; mark the subscriber overflowed when full."""
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
            metrics.EVENTS_DELIVERED.labels(self.kind).inc()
        except asyncio.QueueFull:
            self.cut_off()

    def cut_off(self) -> None:
        """End this subscription: the next get() raises SubscriberOverflow."""
        if self.overflowed:
            return
        self.overflowed = True
        metrics.SUBSCRIBER_OVERFLOWS.labels(self.kind).inc()
        # Wake a reader blocked in get() so it notices at once.
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait({"__overflow__": True})

    async def get(self) -> dict[str, Any]:
        """Return the next event; raise SubscriberOverflow once the queue overflowed."""
        if self.overflowed:
            raise SubscriberOverflow(self.stream)
        event = await self._queue.get()
        if self.overflowed:
            raise SubscriberOverflow(self.stream)
        return event

    def get_nowait(self) -> dict[str, Any] | None:
        """Return the next queued event or None; raise SubscriberOverflow if cut off."""
        if self.overflowed:
            raise SubscriberOverflow(self.stream)
        try:
            return self._queue.get_nowait()
        except asyncio.QueueEmpty:
            return None

    def qsize(self) -> int:
        return self._queue.qsize()


class GapTracker:
    """Notice events of one stream that never arrived, tolerating reordering.

    Over Redis every event carries a number from one INCR per stream. Events from
    several publishers may arrive slightly out of order, so a missing number is
    only a loss once it is still missing after a grace period.
    """

    MAX_MISSING = 10000

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.last: int | None = None
        self.missing: dict[int, float] = {}

    def seen(self, number: int, now: float) -> bool:
        """Record an event's number; return False for a duplicate to drop."""
        if self.last is None:
            self.last = number
            return True
        if number <= self.last:
            return self.missing.pop(number, None) is not None
        for missing in range(self.last + 1, min(number, self.last + 1 + self.MAX_MISSING)):
            self.missing[missing] = now + self.grace
        self.last = number
        return True

    def lost(self, now: float) -> bool:
        """Return whether an event is missing past its grace period (or far too many are)."""
        if len(self.missing) >= self.MAX_MISSING:
            return True
        return any(deadline <= now for deadline in self.missing.values())


class Hub:
    """One process's (one event loop's) member of the channel layer."""

    def __init__(self) -> None:
        self.layer = _hub_layer()
        self._subscribers: dict[str, set[Subscription]] = {}
        self._joined: dict[str, float] = {}
        self._channel: str | None = None
        self._reader: asyncio.Task | None = None
        self._watchdog: asyncio.Task | None = None
        self._lock = asyncio.Lock()
        self._gaps: dict[str, GapTracker] = {}
        # Over Redis, events are numbered per stream so lost ones are noticed.
        self._counter = _redis_counter(self.layer)

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
        per event.
        """
        if not events:
            return
        metrics.EVENTS_PUBLISHED.labels(metrics.stream_kind(stream)).inc(len(events))
        message = {"type": HUB_MESSAGE_TYPE, "stream": stream, "events": events}
        if self._counter is not None:
            message["n"] = await self._counter.next(stream)
        await self.layer.group_send(group_name(stream), message)

    @contextlib.asynccontextmanager
    async def subscribe(
        self, stream: str, *, maxsize: int | None = None
    ) -> AsyncIterator[Subscription]:
        """Subscribe to a stream for the duration of the block.

        Once the block is entered, every event published afterwards is queued, so
        a caller can subscribe first and then replay from the store without a gap.
        """
        sub = Subscription(stream, maxsize or settings.STREAM_SUBSCRIBER_QUEUE)
        await self._add(sub)
        try:
            yield sub
        finally:
            # Shielded so a cancelled (disconnected) client still leaves cleanly.
            await asyncio.shield(self._remove(sub))

    async def _add(self, sub: Subscription) -> None:
        async with self._lock:
            await self._ensure_reader()
            subs = self._subscribers.setdefault(sub.stream, set())
            subs.add(sub)
            metrics.LOCAL_SUBSCRIBERS.labels(sub.kind).inc()
            if sub.stream not in self._joined:
                await self.layer.group_add(group_name(sub.stream), self._channel)
                self._joined[sub.stream] = asyncio.get_running_loop().time()
                self._gaps[sub.stream] = GapTracker(settings.STREAM_GAP_GRACE_SECONDS)

    async def _remove(self, sub: Subscription) -> None:
        async with self._lock:
            subs = self._subscribers.get(sub.stream)
            if subs is None:
                return
            if sub in subs:
                subs.discard(sub)
                metrics.LOCAL_SUBSCRIBERS.labels(sub.kind).dec()
            if not subs:
                del self._subscribers[sub.stream]
                self._joined.pop(sub.stream, None)
                self._gaps.pop(sub.stream, None)
                await self.layer.group_discard(group_name(sub.stream), self._channel)
            if not self._subscribers and self._reader is not None:
                # Nothing local listens any more: stop reading until someone does.
                # Not awaited: channels-redis may finish its blocking pop first,
                # and a leaving client must not wait for that.
                reader, self._reader = self._reader, None
                reader.cancel()
                if self._watchdog is not None:
                    self._watchdog.cancel()
                    self._watchdog = None
                # The pub/sub layer drops a channel whose receive was cancelled.
                self._channel = None

    async def _ensure_reader(self) -> None:
        if self._reader is not None and not self._reader.done():
            return
        if self._channel is None:
            self._channel = await self.layer.new_channel("hub.")
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read_forever())
        if self._counter is not None and (self._watchdog is None or self._watchdog.done()):
            self._watchdog = loop.create_task(self._watch_for_losses())

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
            return
        stream = message["stream"]
        tracker = self._gaps.get(stream)
        number = message.get("n")
        if tracker is not None and number is not None:
            now = asyncio.get_running_loop().time()
            if not tracker.seen(number, now):
                return  # a duplicate delivery (channels-redis#299)
        events = message["events"]
        for sub in tuple(self._subscribers.get(stream, ())):
            for event in events:
                sub.offer(event)

    def cut_off_stream(self, stream: str) -> None:
        """Cut off every local subscriber of a stream; they resume from the store by id."""
        for sub in tuple(self._subscribers.get(stream, ())):
            sub.cut_off()
        if stream in self._gaps:
            self._gaps[stream] = GapTracker(settings.STREAM_GAP_GRACE_SECONDS)

    async def _watch_for_losses(self) -> None:
        """Cut off the subscribers of a stream whose events went missing on the way."""
        loop = asyncio.get_running_loop()
        interval = max(0.05, settings.STREAM_GAP_GRACE_SECONDS / 4)
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for stream, tracker in tuple(self._gaps.items()):
                if tracker.lost(now):
                    logger.warning("events lost on stream %s; subscribers resume by id", stream)
                    self.cut_off_stream(stream)

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


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def get_hub() -> Hub:
    """Return this event loop's hub (one per worker process in production)."""
    loop = asyncio.get_running_loop()
    hub = _hubs.get(loop)
    if hub is None:
        hub = _hubs[loop] = Hub()
    return hub


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
    """Publish from synchronous code (admin actions, management commands)."""
    from asgiref.sync import async_to_sync

    async_to_sync(publish)(stream, event)
