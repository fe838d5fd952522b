"""Notice events of a stream that never arrived, or a counter that started again.

Over Redis each event carries (epoch, n) from one counter per stream (the
numbering script in `streams.layers`); each receiving process keeps a GapTracker
per stream. A gap still open after a grace period, or a new epoch (Redis came back
empty), makes the hub cut that stream's local subscribers off to replay by id.
"""

from __future__ import annotations


class GapTracker:
    """Notice events of one stream that never arrived, tolerating reordering.

    Over Redis every event carries (epoch, number) from one counter per stream.
    Events from several publishers may arrive slightly out of order, so a missing
    number is only a loss once it is still missing after a grace period. A new
    epoch means the counter started again (Redis came back empty): its numbers
    are not duplicates of the old ones, and whatever was in flight is lost.
    """

    MAX_MISSING = 10000

    def __init__(self, grace: float) -> None:
        self.grace = grace
        self.epoch: str | None = None
        self.last: int | None = None
        self.missing: dict[int, float] = {}

    def restarted(self, epoch: str | None) -> bool:
        """Return whether an event of this epoch shows the counter started again."""
        return self.last is not None and epoch != self.epoch

    def seen(self, number: int, now: float, epoch: str | None = None) -> bool:
        """Record an event's number; return False for a duplicate to drop.

        An event of another epoch starts the count afresh from its number (the
        caller checks `restarted()` first, to cut subscribers off).
        """
        if self.last is None or epoch != self.epoch:
            self.epoch = epoch
            self.last = number
            self.missing.clear()
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
