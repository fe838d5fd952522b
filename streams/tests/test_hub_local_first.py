"""Over Redis, a process's own subscribers get its events without the Redis round trip."""

from __future__ import annotations

import asyncio

import pytest

from streams.hub import Hub


async def _until_back(hub: Hub) -> None:
    """Wait until every message this hub published has come back through Redis."""
    async with asyncio.timeout(5):
        while hub._early:
            await asyncio.sleep(0.01)


@pytest.mark.redis
async def test_own_subscribers_get_an_event_without_its_copy_from_redis_and_only_once(
    redis_channel_layer,
):
    hub = Hub()
    stream = "rover.local-first"
    async with hub.subscribe(stream) as sub:
        # Hold what the reader receives from Redis instead of dispatching it.
        held: list[dict] = []
        hub._dispatch = held.append
        try:
            await hub.publish(stream, {"id": 1})
            assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
            async with asyncio.timeout(5):
                while not held:
                    await asyncio.sleep(0.01)
        finally:
            del hub._dispatch
        # The copy Redis sent back: numbered, not delivered again.
        for message in held:
            hub._dispatch(message)
        assert sub.get_nowait() is None
        await hub.publish(stream, {"id": 2})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 2}
        await _until_back(hub)
        await asyncio.sleep(0.05)
        assert sub.get_nowait() is None


@pytest.mark.redis
async def test_a_copy_back_before_the_answer_is_delivered_once(redis_channel_layer):
    hub = Hub()
    stream = "rover.local-first-race"
    async with hub.subscribe(stream) as sub:
        send = hub.layer.group_send_numbered
        copy_back = asyncio.Event()

        async def answer_late(group, message):
            number = await send(group, message)
            # The reader gets the copy and dispatches it before this answer returns.
            async with asyncio.timeout(5):
                while message["o"] in hub._early:
                    await asyncio.sleep(0.01)
            copy_back.set()
            return number

        hub.layer.group_send_numbered = answer_late
        try:
            await hub.publish(stream, {"id": 1})
        finally:
            del hub.layer.group_send_numbered
        assert copy_back.is_set()
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
        await asyncio.sleep(0.05)
        assert sub.get_nowait() is None


@pytest.mark.redis
async def test_another_process_hub_still_gets_the_events_through_redis_once(
    redis_channel_layer,
):
    here, there = Hub(), Hub()  # two hubs: two workers, as far as Redis can tell
    stream = "rover.local-first-two"
    async with here.subscribe(stream) as mine, there.subscribe(stream) as theirs:
        await here.publish_many(stream, [{"id": 1}, {"id": 2}])
        await there.publish(stream, {"id": 3})
        for sub in (mine, theirs):
            got = [await asyncio.wait_for(sub.get(), 5)]
            while len(got) < 3:
                got.append(await asyncio.wait_for(sub.get(), 5))
            assert sorted(e["id"] for e in got) == [1, 2, 3]
        await _until_back(here)
        await _until_back(there)
        await asyncio.sleep(0.05)
        assert mine.get_nowait() is None
        assert theirs.get_nowait() is None


@pytest.mark.redis
@pytest.mark.parametrize("when", ["before the publish", "before the writes"])
async def test_no_shortcut_while_the_pubsub_path_is_broken(redis_channel_layer, when):
    """Subscribers owed a resync get nothing live of ours; the copy (if any) decides."""
    hub = Hub()
    stream = "rover.local-first-broken"
    async with hub.subscribe(stream) as sub:
        held: list[dict] = []
        hub._dispatch = held.append  # the reader gets nothing through to the streams
        try:
            if when == "before the publish":
                hub.redis_lost()
            await hub.publish(stream, {"id": 1})
            if when == "before the writes":
                hub.redis_lost()  # the writes were scheduled for the loop's next turn
            await asyncio.sleep(0.1)
            assert sub.get_nowait() is None
        finally:
            del hub._dispatch
