from __future__ import annotations

import asyncio
import json
import time
import uuid

from comms.presence import PresenceTracker
from streams.hub import subscribe


async def test_a_user_with_two_sockets_stays_online_until_both_leave():
    slug = f"p{uuid.uuid4().hex[:8]}"
    tracker = PresenceTracker()
    await tracker.join(slug, "tab1", 1, "ann")
    online = await tracker.join(slug, "tab2", 1, "ann")
    assert online == [{"id": 1, "username": "ann"}]
    assert await tracker.leave(slug, "tab1") == [{"id": 1, "username": "ann"}]
    assert await tracker.leave(slug, "tab2") == []


async def test_entries_nobody_refreshes_expire_and_the_change_is_announced(settings):
    """A dead worker's sockets are never refreshed: the next beat prunes and announces them."""
    slug = f"p{uuid.uuid4().hex[:8]}"
    settings.PRESENCE_TTL_SECONDS = 30
    tracker = PresenceTracker()
    async with subscribe(f"room.{slug}") as sub:
        await tracker.join(slug, "alive", 1, "ann")
        await tracker.store.add(slug, [json.dumps([2, "ghost", "dead"])], time.time() - 20)
        assert [u["username"] for u in await tracker.online(slug)] == ["ann", "ghost"]
        settings.PRESENCE_TTL_SECONDS = 10
        await tracker.beat_once()
        event = await asyncio.wait_for(sub.get(), 5)
    assert event["event"] == "presence"
    assert json.loads(event["data"]) == {
        "type": "presence",
        "online": [{"id": 1, "username": "ann"}],
    }
    assert [u["username"] for u in await tracker.online(slug)] == ["ann"]
    await tracker.leave(slug, "alive")


async def test_a_socket_leaving_while_the_heartbeat_writes_is_not_written_back():
    """A storm keeps the Redis pool busy, so a heartbeat's add can wait behind the leaves.

    Entries that left meanwhile were written back by that add and stayed as ghosts
    until the TTL (300 sockets dropped at once left 89); the beat removes them again.
    """
    slug = f"p{uuid.uuid4().hex[:8]}"
    tracker = PresenceTracker()
    await tracker.join(slug, "stays", 1, "ann")
    await tracker.join(slug, "leaves", 2, "bob")
    store_add = tracker.store.add
    adding, release = asyncio.Event(), asyncio.Event()

    async def slow_add(room: str, members: list[str], now: float) -> None:
        adding.set()
        await release.wait()  # as a call queued for a pooled connection waits
        await store_add(room, members, now)

    tracker.store.add = slow_add
    beat = asyncio.create_task(tracker.beat_once())
    await adding.wait()
    leave = asyncio.create_task(tracker.leave(slug, "leaves"))
    await asyncio.sleep(0.05)
    release.set()
    await beat
    await leave
    tracker.store.add = store_add
    assert [u["username"] for u in await tracker.online(slug)] == ["ann"]
    await tracker.leave(slug, "stays")
