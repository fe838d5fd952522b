"""A token bucket per socket for the replays a client asks for (`history`, `resume`).

Each request takes a token; tokens come back at CHAT_REPLAY_PER_SECOND up to
CHAT_REPLAY_BURST. A `history` request with no token left is answered with a
`rate_limited` error (the socket stays open); a `resume` waits for its tokens,
one per page of RESUME_CHUNK messages, so a client resuming a long gap is paced
rather than refused and a socket sends at most about CHAT_REPLAY_PER_SECOND
pages a second. Per socket, in memory: no Redis call on this path.
"""

from __future__ import annotations

import asyncio
import time


class TokenBucket:
    """`capacity` tokens, refilled continuously at `rate` per second."""

    def __init__(self, *, capacity: float, rate: float) -> None:
        self.capacity = max(1.0, capacity)
        self.rate = rate
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def try_take(self) -> bool:
        """Take one token if there is one; return whether it was taken."""
        self._refill()
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_seconds(self) -> float:
        """Return how long until a token is available (0 if one is)."""
        self._refill()
        if self.tokens >= 1:
            return 0.0
        return (1 - self.tokens) / self.rate if self.rate > 0 else float("inf")

    async def take(self) -> None:
        """Take one token, sleeping until one is there."""
        delay = self.wait_seconds()
        if delay:
            await asyncio.sleep(delay)
            self._refill()
        # After the wait a token is there (up to float rounding, which may go below 0).
        self.tokens -= 1
