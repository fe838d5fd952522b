"""The hub with Redis hung (SIGSTOP): one stream's join or leave holds up no other.

A stream's first local subscriber makes the hub join its group and its last one
leave it, each a Redis call through the shard's connection, which a publish in
flight holds: with Redis hung it waits until redis-py gives up (5 s). These
calls used to run under the hub's one lock, so every subscribe and unsubscribe
of the worker, even to a stream already joined that needs no Redis call,
waited behind them. Now one stream's joins and leaves wait only for each other,
in the order they came.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streams.hub import Hub, get_hub

from .redis_server import private_redis, use_redis

__all__ = ["private_redis"]

pytestmark = pytest.mark.redis

# Under redis-py's 5 s socket timeout, with room for a loaded machine.
SUBSCRIBED_WITHIN = 0.5


@pytest.mark.redis
async def test_a_leave_hung_on_redis_holds_up_no_subscribe_to_another_stream(
    private_redis, settings
):
    use_redis(settings, private_redis.url)
    hub = get_hub()
    _, leave_a, holder = await _subscribe_and_wait(hub, "room.hung-a")
    async with hub.subscribe("room.hung-b") as first_b:
        await hub.publish("room.hung-b", {"id": 1})
        assert await asyncio.wait_for(first_b.get(), 5) == {"id": 1}
        assert "room.hung-a" in hub._joined
        private_redis.pause()
        publishing = _publish_in_background(hub, "room.hung-other")
        try:
            leave_a.set()  # A's last subscriber goes: its discard waits behind the publish
            await asyncio.sleep(0.2)
            assert not holder.done()
            started = time.monotonic()
            async with asyncio.timeout(4):
                async with hub.subscribe("room.hung-b") as second_b:
                    took = time.monotonic() - started
            assert took < SUBSCRIBED_WITHIN, f"subscribing to B took {took:.2f} s"
            assert second_b is not None
        finally:
            private_redis.resume()
        await asyncio.wait_for(holder, 10)
        await asyncio.wait_for(publishing, 10)
        assert "room.hung-a" not in hub._joined


@pytest.mark.redis
async def test_leaving_and_coming_back_during_a_hang_ends_joined_once_redis_answers(
    private_redis, settings
):
    use_redis(settings, private_redis.url)
    hub = get_hub()
    async with hub.subscribe("room.hung-keep") as keeper:  # the reader stays up meanwhile
        sub, release, leaving = await _subscribe_and_wait(hub, "room.hung-back")
        await hub.publish("room.hung-back", {"id": 1})
        assert await asyncio.wait_for(sub.get(), 5) == {"id": 1}
        private_redis.pause()
        publishing = _publish_in_background(hub, "room.hung-other")
        try:
            async with asyncio.timeout(15):
                await asyncio.sleep(0.1)
                release.set()  # the last subscriber leaves: the discard waits behind the publish
                await asyncio.sleep(0.2)
                assert not leaving.done()
                # Back before Redis has answered the leave.
                comeback = asyncio.ensure_future(_subscribe_and_wait(hub, "room.hung-back"))
                await asyncio.sleep(0.3)
                private_redis.resume()
                sub, release, _ = await comeback
                await leaving
                await publishing
        finally:
            private_redis.resume()
        try:
            assert "room.hung-back" in hub._joined
            # Joined for real: what another worker publishes after the thaw reaches the
            # new subscriber through Redis (this hub's own events would be delivered
            # locally without Redis, and prove nothing).
            other = Hub()
            for i in range(2, 5):
                await other.publish("room.hung-back", {"id": i})
            got = [await asyncio.wait_for(sub.get(), 5) for _ in range(3)]
            assert got == [{"id": 2}, {"id": 3}, {"id": 4}]
        finally:
            release.set()
            await asyncio.sleep(0)
        assert keeper.get_nowait() is None


def _publish_in_background(hub, stream: str) -> asyncio.Future:
    """Publish while Redis hangs: it holds the shard's connection until Redis answers."""
    return asyncio.ensure_future(hub.publish(stream, {"id": 0}))


async def _subscribe_and_wait(hub, stream: str):
    """Open a subscription in its own task; return it, the event that ends it, and the task."""
    opened: asyncio.Future = asyncio.get_running_loop().create_future()
    release = asyncio.Event()

    async def hold() -> None:
        async with hub.subscribe(stream) as sub:
            opened.set_result(sub)
            await release.wait()

    task = asyncio.ensure_future(hold())
    _held.add(task)
    task.add_done_callback(_held.discard)
    return await opened, release, task


_held: set[asyncio.Task] = set()
