"""Who is online in each room, right across worker processes and self-healing.

Each socket is one entry (so a user with two tabs stays online until both close)
scored with its last heartbeat time. With Redis the entries live in one Redis
sorted set per room (on the shard of its key), shared by every worker; without
it, in a dict in the process.
Each process refreshes its own sockets' entries every PRESENCE_REFRESH_SECONDS
and drops entries older than PRESENCE_TTL_SECONDS, so a worker that dies without
running its disconnect handlers leaves ghosts for at most the TTL; the pruning
worker then publishes a presence update to the room.

While Redis does not answer, presence fails open: a socket still joins (its
entry is kept locally), and the room's list is this worker's own sockets. The
first heartbeat that reaches Redis again re-adds every local entry (a Redis
that came back empty has none) and publishes the room's full `online` list.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from django.conf import settings
from redis import exceptions as redis_errors

from streams.per_loop import PerLoop

from .redis_client import get_redis, key
from .services import presence_announce

logger = logging.getLogger(__name__)


def _online(members: list[str]) -> list[dict[str, Any]]:
    users: dict[int, str] = {}
    for member in members:
        user_id, username, _presence_id = json.loads(member)
        users[user_id] = username
    return [
        {"id": uid, "username": name} for uid, name in sorted(users.items(), key=lambda u: u[1])
    ]


class _MemoryStore:
    def __init__(self) -> None:
        self.rooms: dict[str, dict[str, float]] = {}

    async def add(self, slug: str, members: list[str], now: float) -> None:
        room = self.rooms.setdefault(slug, {})
        for member in members:
            room[member] = now

    async def remove(self, slug: str, *members: str) -> None:
        for member in members:
            self.rooms.get(slug, {}).pop(member, None)

    async def prune(self, slug: str, oldest: float) -> int:
        room = self.rooms.get(slug, {})
        stale = [member for member, seen in room.items() if seen < oldest]
        for member in stale:
            del room[member]
        return len(stale)

    async def members(self, slug: str, oldest: float) -> list[str]:
        await self.prune(slug, oldest)
        return list(self.rooms.get(slug, {}))


class _RedisStore:
    """Each room's sorted set, on the shard that holds its key."""

    def __init__(self, shards) -> None:
        self.shards = shards

    async def add(self, slug: str, members: list[str], now: float) -> None:
        name = key("presence", slug)
        async with self.shards.client(name).pipeline(transaction=False) as pipe:
            pipe.zadd(name, dict.fromkeys(members, now))
            pipe.expire(name, int(settings.PRESENCE_TTL_SECONDS * 3) + 1)
            await pipe.execute()

    async def remove(self, slug: str, *members: str) -> None:
        name = key("presence", slug)
        await self.shards.client(name).zrem(name, *members)

    async def prune(self, slug: str, oldest: float) -> int:
        name = key("presence", slug)
        return int(await self.shards.client(name).zremrangebyscore(name, "-inf", oldest))

    async def members(self, slug: str, oldest: float) -> list[str]:
        name = key("presence", slug)
        async with self.shards.client(name).pipeline(transaction=False) as pipe:
            pipe.zremrangebyscore(name, "-inf", oldest)
            pipe.zrange(name, 0, -1)
            _, members = await pipe.execute()
        return [m.decode() if isinstance(m, bytes) else m for m in members]


class PresenceTracker:
    """This process's (event loop's) sockets in each room and their heartbeat."""

    def __init__(self) -> None:
        shards = get_redis()
        self.store = _RedisStore(shards) if shards is not None else _MemoryStore()
        self.local: dict[str, dict[str, str]] = {}
        self._heartbeat: asyncio.Task | None = None
        # Set while the shared store does not answer; the next good beat re-announces.
        self.degraded = False

    def _oldest(self) -> float:
        return time.time() - settings.PRESENCE_TTL_SECONDS

    async def join(self, slug: str, presence_id: str, user_id: int, username: str) -> list[dict]:
        """Mark a socket online in a room; return who is online now."""
        member = json.dumps([user_id, username, presence_id])
        self.local.setdefault(slug, {})[presence_id] = member
        if self._heartbeat is None or self._heartbeat.done():
            self._heartbeat = asyncio.get_running_loop().create_task(self._beat())
        try:
            await self.store.add(slug, [member], time.time())
        except redis_errors.RedisError as exc:
            self._degrade(exc)
        return await self.online(slug)

    async def leave(self, slug: str, presence_id: str) -> list[dict]:
        """Mark a socket gone; return who is online now."""
        room = self.local.get(slug, {})
        member = room.pop(presence_id, None)
        if not room:
            self.local.pop(slug, None)
        if not self.local and self._heartbeat is not None:
            self._heartbeat.cancel()
            self._heartbeat = None
        if member is not None:
            try:
                await self.store.remove(slug, member)
            except redis_errors.RedisError as exc:
                self._degrade(exc)  # the entry ages out after the TTL
        return await self.online(slug)

    async def online(self, slug: str) -> list[dict]:
        """Return the users online in a room (any worker), by username.

        While Redis does not answer: this worker's own sockets in the room.
        """
        try:
            return _online(await self.store.members(slug, self._oldest()))
        except redis_errors.RedisError as exc:
            self._degrade(exc)
            return self.local_online(slug)

    def local_online(self, slug: str, *, leaving: str | None = None) -> list[dict]:
        """Return the users of this worker's own sockets in a room (but `leaving`), by username.

        What `online` answers while Redis does not; a socket also takes it when
        Redis has not answered in time (`comms.bounded`).
        """
        room = self.local.get(slug, {})
        return _online([member for pid, member in room.items() if pid != leaving])

    def _degrade(self, exc: Exception) -> None:
        if not self.degraded:
            logger.warning("presence is local to this worker until Redis answers: %r", exc)
        self.degraded = True

    async def beat_once(self) -> None:
        """Refresh this process's entries and prune stale ones, announcing any change.

        After an outage (`degraded`) every room gets its full list again, since
        entries may have been lost (a Redis restarted empty) or aged out.
        """
        now = time.time()
        recovering = self.degraded
        for slug, room in tuple(self.local.items()):
            if room:
                members = list(room.values())
                await self.store.add(slug, members, now)
                # Sockets that left while the add waited for a connection (a storm keeps
                # the pool busy) were just written back: remove them again, or each
                # would stay a ghost until the TTL.
                if left := set(members).difference(room.values()):
                    await self.store.remove(slug, *left)
            pruned = await self.store.prune(slug, now - settings.PRESENCE_TTL_SECONDS)
            if pruned or recovering:
                await presence_announce(team_slug=slug, online=await self.online(slug))
        if recovering:
            self.degraded = False
            logger.warning("presence is shared through Redis again")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(settings.PRESENCE_REFRESH_SECONDS)
            try:
                await self.beat_once()
            except asyncio.CancelledError:
                raise
            except redis_errors.RedisError as exc:
                # Redis away: entries age out; the next beat after recovery restores them.
                self._degrade(exc)
            except Exception:
                logger.exception("presence heartbeat failed")


_trackers = PerLoop(PresenceTracker)


def get_tracker() -> PresenceTracker:
    """Return this event loop's presence tracker."""
    return _trackers.get()
