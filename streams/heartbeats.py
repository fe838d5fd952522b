"""When an idle SSE stream sends its heartbeat: one ticker per event loop, no timer per stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from django.conf import settings

from .per_loop import PerLoop
from .subscriptions import Subscription


class Heartbeats:
    """One timer per event loop that nudges the streams idle for a heartbeat's time.

    A timer per waiting stream (`asyncio.timeout` around each wait) cost a
    timer set and cancelled for every event at every subscriber, on the path
    where 1,000 streams are written one after another (bench/telemetry.py).
    The ticker runs every half heartbeat and nudges the streams that have been
    waiting since before its previous tick, so an idle stream sends a heartbeat
    after between a half and a whole SSE_HEARTBEAT_SECONDS of silence.
    """

    def __init__(self) -> None:
        self.ticks = 0
        # Each waiting stream's subscription and the tick it started waiting at.
        self.waiting: dict[Subscription, int] = {}
        self.streams = 0
        self.ticker: asyncio.Task | None = None

    @contextlib.asynccontextmanager
    async def streaming(self) -> AsyncIterator[None]:
        """Keep the ticker running while the block (one open stream) lasts."""
        self.streams += 1
        if self.ticker is None or self.ticker.done():
            self.ticker = asyncio.get_running_loop().create_task(self._tick())
        try:
            yield
        finally:
            self.streams -= 1
            if not self.streams and self.ticker is not None:
                # Cancelled, not left sleeping: an event loop may close after its last stream.
                self.ticker.cancel()
                self.ticker = None

    async def wait(self, subscription: Subscription) -> None:
        """Wait for the subscription's next event, its cut-off or a heartbeat nudge."""
        self.waiting[subscription] = self.ticks
        try:
            await subscription.wait()
        finally:
            self.waiting.pop(subscription, None)

    def sent(self, subscription: Subscription) -> None:
        """Restart a waiting stream's silence: something was written to it without waking it."""
        if subscription in self.waiting:
            self.waiting[subscription] = self.ticks

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(settings.SSE_HEARTBEAT_SECONDS / 2)
            self.ticks += 1
            for subscription, since in tuple(self.waiting.items()):
                if since <= self.ticks - 2:
                    subscription.nudge()


_beats = PerLoop(Heartbeats)


def heartbeats() -> Heartbeats:
    """Return this event loop's heartbeat ticker."""
    return _beats.get()
