"""A local subscriber's bounded queue of one stream's events (`streams.hub` fills it).

Kept apart from the hub because it is what consumers hold: a subscriber that
falls behind is cut off (`SubscriberOverflow`) rather than silently skipped, and
resumes from the store by id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from . import metrics


class SubscriberOverflow(Exception):
    """The subscriber was cut off: it must reconnect and replay from the store.

    The subscription's `reason` says why (see `Subscription.cut_off`).
    """


class Subscription:
    """A local subscriber's bounded queue of events from one stream.

    A plain list read from an index and one Future while a reader waits, not an
    asyncio.Queue: a queue is three deques and an Event (~3 KiB) per open stream,
    and a worker holds thousands of idle streams (bench/telemetry.py).
    """

    __slots__ = (
        "__weakref__",
        "_events",
        "_head",
        "_waiter",
        "kind",
        "maxsize",
        "overflowed",
        "reason",
        "stream",
        "writer",
    )

    def __init__(self, stream: str, maxsize: int) -> None:
        self.stream = stream
        self.kind = metrics.stream_kind(stream)
        self.maxsize = maxsize
        self.overflowed = False
        self.reason = ""
        self._events: list[dict[str, Any]] = []
        self._head = 0  # the next event to read is _events[_head]
        self._waiter: asyncio.Future[None] | None = None
        # Set by the reader only while it waits with nothing queued: writes a batch
        # straight to its client and returns True, or returns False (then queue it).
        self.writer: Callable[[list[dict[str, Any]]], bool] | None = None

    def deliver(self, events: list[dict[str, Any]]) -> bool:
        """Hand events to the reader: written at once while it is idle, else queued.

        Return whether they were delivered (False: cut off now or before).
        """
        writer = self.writer
        if writer is not None and writer(events):
            return True
        return self.offer_many(events)

    def offer_many(self, events: list[dict[str, Any]]) -> bool:
        """Queue events in order; return whether they were queued.

        A subscriber whose queue would pass `maxsize` is cut off instead.

        Not counted here: the hub counts a message's deliveries to all its
        subscribers at once (the counter takes a lock, once per subscriber was
        ~10% of the fan-out's time in a profile of bench/telemetry.py).
        """
        if self.overflowed:
            return False
        # Queued events go first: nothing may be written past them until the reader ran.
        self.writer = None
        if len(self._events) - self._head + len(events) > self.maxsize:
            self.cut_off()
            return False
        self._events.extend(events)
        self._wake()
        return True

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
        self.writer = None
        if reason == "too_slow":
            metrics.SUBSCRIBER_OVERFLOWS.labels(self.kind).inc()
        elif reason == "resync":
            metrics.SUBSCRIBER_RESYNCS.labels(self.kind).inc()
        self._events, self._head = [], 0
        # Wake a reader blocked in get() so it notices at once.
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def nudge(self) -> None:
        """Wake a reader blocked in wait() with nothing queued (a heartbeat is due)."""
        self._wake()

    async def wait(self) -> None:
        """Return once an event is queued, the subscription is cut off, or nudge() is called."""
        if self.overflowed or len(self._events) > self._head:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    async def get(self) -> dict[str, Any]:
        """Return the next event; raise SubscriberOverflow once the queue overflowed."""
        while True:
            event = self.get_nowait()
            if event is not None:
                return event
            await self.wait()

    def get_nowait(self) -> dict[str, Any] | None:
        """Return the next queued event or None; raise SubscriberOverflow if cut off."""
        if self.overflowed:
            raise SubscriberOverflow(self.stream)
        events, head = self._events, self._head
        if head >= len(events):
            return None
        event = events[head]
        head += 1
        if head == len(events):
            events.clear()
            head = 0
        elif head >= 64 and head * 2 >= len(events):
            del events[:head]
            head = 0
        self._head = head
        return event

    def qsize(self) -> int:
        return len(self._events) - self._head
