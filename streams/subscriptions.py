"""A local subscriber's bounded queue of one stream's events (`streams.hub` fills it).

Kept apart from the hub because it is what consumers hold: a subscriber that
falls behind is cut off (`SubscriberOverflow`) rather than silently skipped, and
resumes from the store by id.
"""

from __future__ import annotations

import asyncio
from typing import Any

from . import metrics


class SubscriberOverflow(Exception):
    """The subscriber was cut off: it must reconnect and replay from the store.

    The subscription's `reason` says why (see `Subscription.cut_off`).
    """


class Subscription:
    """A local subscriber's bounded queue of events from one stream."""

    def __init__(self, stream: str, maxsize: int) -> None:
        self.stream = stream
        self.kind = metrics.stream_kind(stream)
        self.maxsize = maxsize
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self.overflowed = False
        self.reason = ""
        # The labelled counter, looked up once: offer() runs once per delivery.
        self._delivered = metrics.EVENTS_DELIVERED.labels(self.kind)

    def offer(self, event: dict[str, Any]) -> None:
        """Queue an event without waiting; mark the subscriber overflowed when full."""
        if self.overflowed:
            return
        try:
            self._queue.put_nowait(event)
            self._delivered.inc()
        except asyncio.QueueFull:
            self.cut_off()

    def cut_off(self, reason: str = "too_slow") -> None:
        """End this subscription: the next get() raises SubscriberOverflow.

        `reason` tells the client why: "too_slow" (it fell behind), "resync" (live
        delivery was interrupted, e.g. by a Redis outage, or events were lost on
        the way: what is stored must be replayed) or "restart" (this worker is
        shutting down).
        """
        if self.overflowed:
            return
        self.overflowed = True
        self.reason = reason
        if reason == "too_slow":
            metrics.SUBSCRIBER_OVERFLOWS.labels(self.kind).inc()
        elif reason == "resync":
            metrics.SUBSCRIBER_RESYNCS.labels(self.kind).inc()
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
