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
