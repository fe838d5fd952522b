"""Room messages sent over the socket with a Redis that hangs (SIGSTOP).

A socket's message passes the chat rate limit (a script on Redis) before it is
stored, and that call had no bound: with Redis hung the socket stored nothing and
handled no further frame until redis-py gave up (5 s a message). The rate check
now waits at most `RATE_CHECK_WAIT_SECONDS`, then the worker's own window decides
for a while, as when Redis refuses. The message is stored and its publish goes
on in the background (`OrderedPublisher`), reaching every member once Redis
answers again.

Typing and presence went the same way: each announcement, the presence entry's
write on join and its removal on disconnect, and a disconnect's pending
publishes waited on the hung Redis until redis-py gave up (5 s each), and the
socket handled no frame meanwhile. Each now waits a bounded time and goes on in
the background (`comms.bounded`); typing and presence announcements are never
stored, so one that Redis has not answered is dropped.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from channels.testing import WebsocketCommunicator

from comms.consumers import (
    DRAIN_WAIT_SECONDS,
    EPHEMERAL_WAIT_SECONDS,
    PRESENCE_WAIT_SECONDS,
    UNSUBSCRIBE_WAIT_SECONDS,
)
from comms.models import Message
from comms.ratelimit import RATE_CHECK_WAIT_SECONDS, chat_rate_allow
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
# Hang detectors below redis-py's 5 s: a typing frame's announcement waits its bound,
# the message behind it the rate check's; a joining socket also waits for its presence
# entry; a disconnect for its publishes, its unsubscribe, its presence removal and its
# "left" (the room's last socket on the worker: no publishes, but the hub leaves the group).
TYPED_MESSAGE_WITHIN = EPHEMERAL_WAIT_SECONDS + RATE_CHECK_WAIT_SECONDS + 1
JOINED_WITHIN = PRESENCE_WAIT_SECONDS + 1
LEFT_WITHIN = (
    DRAIN_WAIT_SECONDS
    + UNSUBSCRIBE_WAIT_SECONDS
    + PRESENCE_WAIT_SECONDS
    + EPHEMERAL_WAIT_SECONDS
    + 1
)
LAST_LEFT_WITHIN = UNSUBSCRIBE_WAIT_SECONDS + PRESENCE_WAIT_SECONDS + EPHEMERAL_WAIT_SECONDS + 1


@pytest.fixture
def room_on_private_redis(settings, private_redis):
    use_redis(settings, private_redis.url)
    return private_redis


async def _stored(client_ids: list[str], within: float) -> list[str]:
    """Poll the store until every one of `client_ids` is there or `within` s passed."""
    started = time.monotonic()
    stored: list[str] = []
    while time.monotonic() - started < within and len(stored) < len(client_ids):
        await asyncio.sleep(0.05)
        stored = [
            m.client_id
            async for m in Message.objects.filter(client_id__in=client_ids).order_by("id")
        ]
    return stored


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


async def test_a_message_sent_right_after_typing_is_stored_while_redis_hangs(
    room_on_private_redis, room, join
):
    server = room_on_private_redis
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    server.pause()
    started = time.monotonic()
    await alice.send_json_to({"type": "typing"})
    await alice.send_json_to({"type": "message", "body": "typed", "client_id": "t1"})
    # The socket answers its next frame from the store: it is not held by the typing.
    await alice.send_json_to({"type": "history", "before": 2**62})
    async with asyncio.timeout(TYPED_MESSAGE_WITHIN):
        while (await alice.receive_json_from(TYPED_MESSAGE_WITHIN))["type"] != "history":
            pass  # bob's "joined"
    assert await _stored(["t1"], TYPED_MESSAGE_WITHIN - (time.monotonic() - started)) == ["t1"]
    server.resume()
    # The typing was dropped or arrives late (never stored); the message reaches both once.
    for communicator in (alice, bob):
        frames = await _messages_until(communicator, "t1", 30)
        assert [f["client_id"] for f in frames] == ["t1"]
    await alice.disconnect()
    await bob.disconnect()


async def test_a_socket_joins_and_posts_while_redis_hangs(
    room_on_private_redis, room, join, ws_app
):
    server = room_on_private_redis
    alice, _, _ = await join(room.alice)
    server.pause()
    bob = WebsocketCommunicator(ws_app, "/ws/comms/ops/")
    bob.scope["user"] = room.bob
    started = time.monotonic()
    assert (await bob.connect(JOINED_WITHIN))[0]
    assert (await bob.receive_json_from(JOINED_WITHIN))["type"] == "history"
    presence = await bob.receive_json_from(JOINED_WITHIN)
    # This worker's own sockets, as while Redis refuses.
    assert presence == {
        "type": "presence",
        "online": [
            {"id": room.alice.pk, "username": "alice"},
            {"id": room.bob.pk, "username": "bob"},
        ],
    }
    assert time.monotonic() - started < JOINED_WITHIN
    await bob.send_json_to({"type": "message", "body": "joined while hung", "client_id": "j1"})
    within = EPHEMERAL_WAIT_SECONDS + RATE_CHECK_WAIT_SECONDS + 1
    assert await _stored(["j1"], within) == ["j1"]
    server.resume()
    for communicator in (alice, bob):
        frames = await _messages_until(communicator, "j1", 30)
        assert [f["client_id"] for f in frames] == ["j1"]
    await alice.disconnect()
    await bob.disconnect()


async def test_a_socket_leaves_while_redis_hangs_and_its_messages_reach_the_room_later(
    room_on_private_redis, room, join, settings
):
    server = room_on_private_redis
    # No rate check (2 s on a hung Redis): Redis must answer again before redis-py gives
    # up on the first publish (5 s), or the room resyncs instead of getting it late.
    settings.CHAT_RATE_MESSAGES = 0
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    server.pause()
    sent = ["d1", "d2", "d3"]
    for client_id in sent:
        await alice.send_json_to({"type": "message", "body": client_id, "client_id": client_id})
    assert await _stored(sent, STORED_WITHIN) == sent
    started = time.monotonic()
    # The communicator cancels the consumer at LEFT_WITHIN (the assertion below then fails).
    await alice.disconnect(timeout=LEFT_WITHIN)
    left_after = time.monotonic() - started
    assert left_after < LEFT_WITHIN, f"the disconnect took {left_after:.2f} s"
    server.resume()
    # The publishes went on after the socket was gone (or failed into a resync).
    frames = await _messages_until(bob, "d3", 30)
    assert [f["client_id"] for f in frames] == sent
    await bob.disconnect()


async def test_the_rooms_last_socket_on_a_worker_leaves_while_redis_hangs(
    room_on_private_redis, room, ws_app
):
    bob = WebsocketCommunicator(ws_app, "/ws/comms/ops/")  # no probe: bob is alone here
    bob.scope["user"] = room.bob
    assert (await bob.connect(10))[0]
    assert [(await bob.receive_json_from(10))["type"] for _ in range(2)] == [
        "history",
        "presence",
    ]
    room_on_private_redis.pause()
    started = time.monotonic()
    await bob.disconnect(timeout=LAST_LEFT_WITHIN)
    took = time.monotonic() - started
    assert took < LAST_LEFT_WITHIN, f"the disconnect took {took:.2f} s"


async def test_a_rate_check_that_timed_out_leaves_redis_alone_for_a_while(
    room_on_private_redis, settings
):
    settings.CHAT_RATE_MESSAGES = 2
    settings.CHAT_RATE_SECONDS = 60
    assert await chat_rate_allow(user_id=7)  # Redis answers: its window counts one
    room_on_private_redis.pause()
    started = time.monotonic()
    # The first check waits its bound; the next ones do not ask the hung shard. The
    # worker's own window decides for them all (it had not seen the first message).
    allowed = [await chat_rate_allow(user_id=7) for _ in range(3)]
    took = time.monotonic() - started
    assert allowed == [True, True, False]
    assert RATE_CHECK_WAIT_SECONDS <= took < 2 * RATE_CHECK_WAIT_SECONDS
