"""The hub across Redis outages: epochs, the reconnect hook, probes, resync cut-offs."""

from __future__ import annotations

import asyncio

import pytest

from streams.hub import GapTracker, get_hub, group_name
from streams.layers import hub_layer

from .redis_server import cut_off_reason, private_redis, use_redis

__all__ = ["private_redis"]


def test_a_new_epoch_restarts_the_count_instead_of_dropping_duplicates():
    tracker = GapTracker(grace=1.0)
    assert not tracker.restarted("a")  # nothing seen yet: no restart to report
    assert tracker.seen(649, now=0.0, epoch="a")
    assert tracker.seen(650, now=0.0, epoch="a")
    assert not tracker.seen(650, now=0.1, epoch="a")  # a duplicate delivery
    # Redis came back empty: the counter is at 1 again, under a new epoch.
    assert tracker.restarted("b")
    assert tracker.seen(1, now=0.2, epoch="b")
    assert not tracker.restarted("b")
    assert tracker.seen(2, now=0.3, epoch="b")
    assert not tracker.lost(now=10.0)


def test_a_restart_forgets_the_numbers_missing_in_the_old_epoch():
    tracker = GapTracker(grace=1.0)
    assert tracker.seen(10, now=0.0, epoch="a")
    assert tracker.seen(12, now=0.0, epoch="a")  # 11 missing
    assert tracker.seen(1, now=0.5, epoch="b")
    assert not tracker.lost(now=5.0)  # 11 of the old run can never come; not a new loss


def test_without_epochs_the_tracker_still_numbers_as_before():
    tracker = GapTracker(grace=1.0)
    assert tracker.seen(1, now=0.0)
    assert not tracker.restarted(None)
    assert tracker.seen(3, now=0.0)
    assert tracker.lost(now=1.0)


@pytest.mark.redis
async def test_numbering_takes_a_new_epoch_when_redis_comes_back_empty(private_redis, settings):
    use_redis(settings, private_redis.url)
    layer = hub_layer()
    channel = await layer.new_channel("hub.")
    await layer.group_add("g", channel)
    received: list[dict] = []

    async def collect() -> None:
        # One receive at a time, never cancelled midway: the pub/sub layer drops a
        # channel whose receive is cancelled.
        while True:
            received.append(await layer.receive(channel))

    async def until(condition, timeout: float, resend=None) -> None:
        async with asyncio.timeout(timeout):
            while not condition():
                if resend is not None:
                    await resend()
                await asyncio.sleep(0.3)

    collector = asyncio.ensure_future(collect())
    numbers = [await layer.group_send_numbered("g", {"type": "t", "i": i}) for i in range(3)]
    await until(lambda: len(received) == 3, 5)
    assert numbers == [1, 2, 3] == [m["n"] for m in received]
    assert [m["i"] for m in received] == [0, 1, 2] and len({m["e"] for m in received}) == 1
    private_redis.shutdown()
    with pytest.raises(Exception):  # noqa: B017 - redis-py's ConnectionError
        await layer.group_send_numbered("g", {"type": "t"})
    private_redis.start()
    assert await layer.group_send_numbered("g", {"type": "t", "i": "again"}) == 1

    async def again() -> None:
        await layer.group_send_numbered("g", {"type": "t", "i": "again"})

    # The pub/sub connection resubscribes by itself within a second or so.
    await until(lambda: len(received) > 3, 20, resend=again)
    assert received[3]["i"] == "again" and received[3]["e"] != received[0]["e"]
    collector.cancel()
    await asyncio.gather(collector, return_exceptions=True)


@pytest.mark.redis
async def test_subscribers_are_cut_off_after_recovery_not_during_the_outage(
    private_redis, settings
):
    use_redis(settings, private_redis.url)
    hub = get_hub()
    async with hub.subscribe("rover.outage") as sub:
        await hub.publish("rover.outage", {"id": 1})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
        private_redis.shutdown()
        with pytest.raises(Exception):  # noqa: B017 - the publish fails, the caller logs
            await hub.publish("rover.outage", {"id": 2})
        await asyncio.sleep(1.5)
        # Still open during the outage: a client cut off now would only come back to wait.
        assert not sub.overflowed
        private_redis.start()
        assert await cut_off_reason(sub, 10) == "resync"
    # Resubscribed: the new run's numbers (1, 2, ...) are delivered, not taken for duplicates.
    async with hub.subscribe("rover.outage") as sub:
        await hub.publish("rover.outage", {"id": 3})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 3}


@pytest.mark.redis
async def test_a_subscription_opened_while_redis_is_down_waits_then_resyncs(
    private_redis, settings
):
    use_redis(settings, private_redis.url)
    hub = get_hub()
    private_redis.shutdown()
    async with hub.subscribe("room.down") as sub:
        assert sub.get_nowait() is None  # open, nothing live yet: the caller replays and waits
        await asyncio.sleep(0.5)
        assert not sub.overflowed
        private_redis.start()
        assert await cut_off_reason(sub, 10) == "resync"
    async with hub.subscribe("room.down") as sub:
        await hub.publish("room.down", {"id": 7})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 7}


@pytest.mark.redis
async def test_a_failed_publish_makes_every_subscriber_resync_once_redis_answers(
    private_redis, settings
):
    """The publish fails on the publisher's side only (a broken counter key): still no loss."""
    import redis.asyncio

    use_redis(settings, private_redis.url)
    hub = get_hub()
    client = redis.asyncio.Redis.from_url(private_redis.url)
    key = f"{settings.CHANNEL_LAYER_PREFIX}hub.seq.{group_name('rover.broken')}"
    async with hub.subscribe("rover.broken") as sub:
        await client.set(key, "not a counter")
        with pytest.raises(Exception):  # noqa: B017 - WRONGTYPE from the numbering script
            await hub.publish("rover.broken", {"id": 1})
        assert await cut_off_reason(sub, 5) == "resync"
    await client.delete(key)
    async with hub.subscribe("rover.broken") as sub:
        await hub.publish("rover.broken", {"id": 2})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 2}
    await client.aclose()


@pytest.mark.redis
async def test_a_counter_that_restarted_cuts_subscribers_off_without_any_reconnect(
    private_redis, settings
):
    """Redis emptied under a live connection (FLUSHALL): the new epoch gives it away."""
    import redis.asyncio

    use_redis(settings, private_redis.url)
    hub = get_hub()
    client = redis.asyncio.Redis.from_url(private_redis.url)
    async with hub.subscribe("rover.flushed") as sub:
        for i in range(1, 4):
            await hub.publish("rover.flushed", {"id": i})
        assert [await asyncio.wait_for(sub.get(), 5) for _ in range(3)] == [
            {"id": i} for i in range(1, 4)
        ]
        await client.flushall()  # the counter is at 1 again, under a new epoch
        await hub.publish("rover.flushed", {"id": 4})
        assert await cut_off_reason(sub, 5) == "resync"
    await client.aclose()
