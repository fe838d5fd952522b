from __future__ import annotations

import asyncio

import pytest

from streams.hub import Hub, SubscriberOverflow


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
