"""Room messages sent over the socket with a Redis that hangs (SIGSTOP).

A socket's message passes the chat rate limit (a script on Redis) before it is
stored, and that call had no bound: with Redis hung the socket stored nothing and
handled no further frame until redis-py gave up (5 s a message). The rate check
now waits at most `RATE_CHECK_WAIT_SECONDS`, then the worker's own window decides
for a while, as when Redis refuses. The message is stored and its publish goes
on in the background (`OrderedPublisher`), reaching every member once Redis
answers again.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from comms.models import Message
from comms.ratelimit import RATE_CHECK_WAIT_SECONDS
from streams.tests.redis_server import private_redis, use_redis

__all__ = ["private_redis"]

pytestmark = [
    pytest.mark.redis,
    pytest.mark.one_pass("services", why="PostgreSQL and a private Redis, as in production"),
]
# A hang detector for two messages. Without the bound each rate check waited until
# redis-py gave up (its default socket timeout, 5 s): the second message was stored
# after 10 s. With it the first waits RATE_CHECK_WAIT_SECONDS, the second not at all.
STORED_WITHIN = 3 * RATE_CHECK_WAIT_SECONDS + 1


@pytest.fixture
def room_on_private_redis(settings, private_redis):
    use_redis(settings, private_redis.url)
    return private_redis


async def _messages_until(communicator, client_id: str, timeout: float) -> list[dict]:
    """Return the message frames up to the one with `client_id`; a resync fails the test."""
    frames: list[dict] = []
    async with asyncio.timeout(timeout):
        while not any(f.get("client_id") == client_id for f in frames):
            frame = await communicator.receive_json_from(timeout)
            assert frame["type"] != "error", frame
            if frame["type"] == "message":
                frames.append(frame)
    return frames


async def test_a_room_message_is_stored_while_redis_hangs_and_reaches_each_member_once(
    room_on_private_redis, room, join
):
    server = room_on_private_redis
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.send_json_to({"type": "message", "body": "before", "client_id": "b1"})
    for communicator in (alice, bob):  # the live path works before Redis hangs
        await _messages_until(communicator, "b1", 10)
    server.pause()
    await alice.send_json_to({"type": "message", "body": "while hung", "client_id": "h1"})
    await alice.send_json_to({"type": "message", "body": "and another", "client_id": "h2"})
    started = time.monotonic()
    stored: list[str] = []
    while time.monotonic() - started < STORED_WITHIN and len(stored) < 2:
        await asyncio.sleep(0.1)
        stored = [
            m.client_id
            async for m in Message.objects.filter(client_id__in=("h1", "h2")).order_by("id")
        ]
    assert stored == ["h1", "h2"]
    server.resume()
    for communicator in (alice, bob):
        frames = await _messages_until(communicator, "h2", 30)
        assert [f["client_id"] for f in frames] == ["h1", "h2"]
    # Nothing comes twice: a message sent after Redis answered again arrives right behind.
    await alice.send_json_to({"type": "message", "body": "after", "client_id": "a1"})
    for communicator in (alice, bob):
        frames = await _messages_until(communicator, "a1", 10)
        assert [f["client_id"] for f in frames] == ["a1"]
    await alice.disconnect()
    await bob.disconnect()
