"""The per-socket token bucket behind the replay throttle."""

from __future__ import annotations

import time

from comms.throttle import TokenBucket


def test_bucket_allows_a_burst_then_refills_at_its_rate():
    bucket = TokenBucket(capacity=3, rate=20)
    assert [bucket.try_take() for _ in range(4)] == [True, True, True, False]
    assert 0 < bucket.wait_seconds() <= 0.05 + 1e-6
    time.sleep(0.06)
    assert bucket.try_take() is True


async def test_take_waits_for_a_token():
    bucket = TokenBucket(capacity=1, rate=50)
    started = time.monotonic()
    for _ in range(4):
        await bucket.take()
    # One token at hand, three more at 50 per second.
    assert time.monotonic() - started >= 0.05
