from __future__ import annotations

import asyncio

import pytest

from streams.hub import Hub
from streams.subscriptions import SubscriberOverflow


async def test_event_reaches_every_local_subscriber_once():
    hub = Hub()
    async with (
        hub.subscribe("telemetry.a") as first,
        hub.subscribe("telemetry.a") as second,
        hub.subscribe("telemetry.b") as other,
    ):
        await hub.publish("telemetry.a", {"id": 1})
        assert await asyncio.wait_for(first.get(), 2) == {"id": 1}
        assert await asyncio.wait_for(second.get(), 2) == {"id": 1}
        await asyncio.sleep(0.05)
        assert other.get_nowait() is None


async def test_process_joins_the_group_once_and_leaves_when_last_subscriber_goes():
    hub = Hub()
    async with hub.subscribe("room.x"), hub.subscribe("room.x"):
        assert list(hub._joined) == ["room.x"]
        assert hub.local_subscriber_count == 2
    assert hub._joined == {}
    assert hub._reader is None
    # Nobody local listens: a later event is not queued anywhere.
    await hub.publish("room.x", {"id": 1})
    assert hub.local_subscriber_count == 0


async def test_slow_subscriber_is_cut_off_not_skipped():
    hub = Hub()
    async with hub.subscribe("telemetry.slow", maxsize=3) as sub:
        for i in range(5):
            await hub.publish("telemetry.slow", {"id": i})
        await asyncio.sleep(0.1)
        assert sub.overflowed
        with pytest.raises(SubscriberOverflow):
            await sub.get()


async def test_a_batch_larger_than_the_queue_cuts_the_subscriber_off():
    hub = Hub()
    async with hub.subscribe("telemetry.slow", maxsize=3) as sub:
        await hub.publish_many("telemetry.slow", [{"id": i} for i in range(5)])
        await asyncio.sleep(0.1)
        assert sub.overflowed
        with pytest.raises(SubscriberOverflow):
            await sub.get()


@pytest.mark.redis
async def test_events_flow_through_redis(redis_channel_layer):
    """The hub over channels-redis; two real processes are covered by the stream tests."""
    hub = Hub()
    async with hub.subscribe("telemetry.redis") as sub:
        await hub.publish("telemetry.redis", {"id": 42, "data": "x" * 1000})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 42, "data": "x" * 1000}


@pytest.mark.django_db
def test_metrics_need_permission_and_count_events(client, user_factory):
    assert client.get("/metrics").status_code == 401
    client.force_login(user_factory())
    assert client.get("/metrics").status_code == 403
    client.force_login(user_factory(perms=("rover.view_telemetryframe",)))
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"mc_stream_events_published_total" in response.content


def test_gap_tracker_tolerates_reordering_and_drops_duplicates():
    from streams.gaps import GapTracker

    tracker = GapTracker(grace=1.0)
    assert tracker.seen(10, now=0.0)
    assert tracker.seen(12, now=0.0)  # 11 is late, not yet lost
    assert not tracker.lost(now=0.5)
    assert tracker.seen(11, now=0.6)
    assert not tracker.seen(11, now=0.7)  # delivered twice: dropped
    assert not tracker.lost(now=5.0)
    assert tracker.seen(14, now=6.0)
    assert not tracker.lost(now=6.9)
    assert tracker.lost(now=7.0)  # 13 never came


async def _take_number(settings_layer, stream: str) -> None:
    import redis.asyncio
    from django.conf import settings

    from streams.hub import group_name

    client = redis.asyncio.Redis.from_url(settings.TEST_REDIS_URL)
    key = f"{settings.CHANNEL_LAYER_PREFIX}hub.seq.{group_name(stream)}"
    await client.hincrby(key, "n", 1)
    await client.aclose()


@pytest.mark.redis
async def test_an_event_lost_in_transit_cuts_subscribers_off_to_replay(
    redis_channel_layer, settings
):
    """An event numbered but never delivered (as across a Redis reconnect) is noticed."""
    settings.STREAM_GAP_GRACE_SECONDS = 0.2
    hub = Hub()
    async with hub.subscribe("rover.gap") as sub:
        await hub.publish("rover.gap", {"id": 1})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
        # Event 2: numbered, lost on the way (its number taken, never delivered).
        await _take_number(redis_channel_layer, "rover.gap")
        await hub.publish("rover.gap", {"id": 3})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 3}
        with pytest.raises(SubscriberOverflow):
            await asyncio.wait_for(sub.get(), 5)


async def test_publish_many_delivers_a_batch_in_order_in_one_turn():
    hub = Hub()
    async with hub.subscribe("rover.batch") as sub:
        await hub.publish_many("rover.batch", [{"id": i} for i in range(1, 6)])
        first = await asyncio.wait_for(sub.get(), 2)
        # The rest were queued with the first: no further waiting needed.
        rest = [sub.get_nowait() for _ in range(4)]
        assert [first, *rest] == [{"id": i} for i in range(1, 6)]
        assert sub.get_nowait() is None
