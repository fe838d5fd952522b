"""A burst of hub messages far past channels' default capacity of 100 reaches every subscriber.

README, Configuration: `CHANNEL_LAYER_CAPACITY` (10,000), "per-channel capacity (never the
silent default of 100)". Each process has one member in the channel layer (its hub's channel,
see streams.hub), so every stream's events pass through that one channel. Without Redis the
hub uses the in-memory layer, whose `group_send` drops a message for a full channel without a
word (it swallows `ChannelFull`). Many publishes at once in one process (ingests, room
messages) all land in the channel before the hub's reader runs again.

The layer is the one the settings configure (the first pass: `mission_control/settings/base.py`'s
in-memory layer, as `make run` has it). In the services pass it is the hub's pub/sub layer
over Redis, which queues without a bound; the same burst must arrive there too.
"""

from __future__ import annotations

import asyncio
import contextlib

from streams.hub import Hub

STREAMS = 20
EVENTS_PER_STREAM = 50  # 1,000 messages at once: 10 times channels' default capacity


async def test_a_burst_of_1000_publishes_at_once_reaches_every_subscriber():
    hub = Hub()
    names = [f"room.burst{n}" for n in range(STREAMS)]
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [await stack.enter_async_context(hub.subscribe(name)) for name in names]
        # Every publish at once, each its own message: none yields to the hub's reader
        # until all are in its channel.
        await asyncio.gather(
            *(
                hub.publish(name, {"id": number})
                for number in range(EVENTS_PER_STREAM)
                for name in names
            )
        )

        async def read(subscription) -> list[int]:
            ids = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while len(ids) < EVENTS_PER_STREAM:
                        ids.append((await subscription.get())["id"])
            return ids

        got = await asyncio.gather(*(read(subscription) for subscription in subscriptions))
        received = dict(zip(names, got, strict=True))
    short = {name: len(ids) for name, ids in received.items() if len(ids) < EVENTS_PER_STREAM}
    assert short == {}, f"events received of {EVENTS_PER_STREAM} per stream"
    assert all(ids == list(range(EVENTS_PER_STREAM)) for ids in received.values())
