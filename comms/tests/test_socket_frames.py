"""Socket frames that used to break a room (issue #13, point 6).

A body with NUL or a lone surrogate is answered `bad_field` and the socket and
the rest of its queued batch go on; JSON nested 20,000 deep is `invalid_json`;
`history` and `resume` requests are throttled per socket (comms.throttle).
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async

from comms.models import Message
from comms.services import message_post

pytestmark = pytest.mark.django_db(transaction=True)


async def receive_until(communicator, predicate, count: int, timeout: float = 5) -> list[dict]:
    """Collect frames until `count` of them satisfy `predicate`; return them all."""
    frames: list[dict] = []
    while sum(map(predicate, frames)) < count:
        frames.append(await communicator.receive_json_from(timeout))
    return frames


@pytest.mark.parametrize(
    "bad_frame",
    [
        '{"type": "message", "body": "nul \\u0000 inside"}',
        '{"type": "message", "body": "lone \\ud800 surrogate"}',
        '{"type": "message", "body": "ok", "client_id": "c\\udfff"}',
        "plain text with a NUL \x00 byte",
    ],
)
async def test_unstorable_body_answers_bad_field_and_keeps_the_batch(room, join, bad_frame):
    alice, _, _ = await join(room.alice)
    # Back to back: the writer task stores queued messages in one transaction.
    await alice.send_json_to({"type": "message", "body": "before", "client_id": "a1"})
    await alice.send_to(text_data=bad_frame)
    await alice.send_json_to({"type": "message", "body": "after", "client_id": "a2"})
    frames = await receive_until(alice, lambda f: f.get("body") in ("before", "after"), 2)
    errors = [f for f in frames if f.get("type") == "error"]
    assert [e["code"] for e in errors] == ["bad_field"]
    assert [f["body"] for f in frames if "body" in f] == ["before", "after"]
    assert await Message.objects.acount() == 2
    # The socket is still open and working.
    await alice.send_json_to({"type": "message", "body": "still here"})
    assert (await alice.receive_json_from())["body"] == "still here"
    await alice.disconnect()


async def test_json_nested_20000_deep_is_invalid_json(room, join):
    alice, _, _ = await join(room.alice)
    for frame in ("[" * 20000 + "]" * 20000, '{"a":' * 10000 + "1" + "}" * 10000):
        await alice.send_to(text_data=frame)
        error = await alice.receive_json_from()
        assert (error["type"], error["code"]) == ("error", "invalid_json")
    await alice.send_json_to({"type": "message", "body": "still here"})
    assert (await alice.receive_json_from())["body"] == "still here"
    await alice.disconnect()


@pytest.mark.parametrize("field", ["before", "after"])
async def test_ids_beyond_a_database_integer_are_bad_fields(room, join, field):
    alice, _, _ = await join(room.alice)
    kind = "history" if field == "before" else "resume"
    await alice.send_json_to({"type": kind, field: 10**30})
    assert (await alice.receive_json_from())["code"] == "bad_field"
    await alice.disconnect()


async def test_history_and_resume_requests_are_throttled_per_socket(room, join, settings):
    settings.CHAT_REPLAY_BURST = 5
    settings.CHAT_REPLAY_PER_SECOND = 1
    await sync_to_async(message_post)(team=room.team, author=room.bob, body="one")
    alice, _, _ = await join(room.alice)
    started = time.monotonic()
    for i in range(150):
        kind = {"type": "history"} if i % 2 else {"type": "resume", "after": 0}
        await alice.send_json_to(kind)
    frames = [await alice.receive_json_from() for _ in range(150)]
    elapsed = time.monotonic() - started
    served = [f for f in frames if f["type"] in ("history", "resume")]
    limited = [f for f in frames if f.get("code") == "rate_limited"]
    assert len(served) + len(limited) == 150
    # The burst, plus what refilled meanwhile: nowhere near 150 replays.
    assert 5 <= len(served) <= 5 + elapsed * 1 + 1
    assert all(f["retry_after"] > 0 for f in limited)
    await alice.send_json_to({"type": "message", "body": "still here"})
    assert (await alice.receive_json_from())["body"] == "still here"
    await alice.disconnect()


async def test_a_long_resume_is_paced_not_refused(room, join, settings, monkeypatch):
    monkeypatch.setattr("comms.consumers.RESUME_CHUNK", 5)
    settings.CHAT_REPLAY_BURST = 2
    settings.CHAT_REPLAY_PER_SECOND = 20

    def post_many() -> None:
        for i in range(22):
            message_post(team=room.team, author=room.bob, body=f"m{i}")

    await sync_to_async(post_many)()
    alice, _, _ = await join(room.alice)
    started = time.monotonic()
    await alice.send_json_to({"type": "resume", "after": 0})
    pages = []
    while not pages or pages[-1]["more"]:
        pages.append(await asyncio.wait_for(alice.receive_json_from(), 5))
    # 5 pages: the request and the second page from the burst, three paced at 20 a second.
    assert len(pages) == 5 and all(p["type"] == "resume" for p in pages)
    assert time.monotonic() - started >= 2 / 20
    assert json.dumps(pages)  # plain JSON, no surrogates
    await alice.disconnect()
