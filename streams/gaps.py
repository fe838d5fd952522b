"""Notice events of a stream that never arrived (over Redis each event is numbered)."""

from __future__ import annotations


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
