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
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

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
    monkeypatch.setattr("comms.delivery.RESUME_CHUNK", 5)
    settings.CHAT_REPLAY_BURST = 2
    settings.CHAT_REPLAY_PER_SECOND = 20

    def store_many() -> None:
        # Stored while alice was away (not published): what her resume has to page through.
        Message.objects.bulk_create(
            [Message(team=room.team, author=room.bob, body=f"m{i}") for i in range(22)]
        )

    alice, _, _ = await join(room.alice)
    await sync_to_async(store_many)()
    started = time.monotonic()
    await alice.send_json_to({"type": "resume", "after": 0})
    pages = []
    while not pages or pages[-1]["more"]:
        pages.append(await asyncio.wait_for(alice.receive_json_from(), 5))
    # 5 pages: the request and the second page from the burst, three paced at 20 a second.
    assert len(pages) == 5 and all(p["type"] == "resume" for p in pages)
    assert sum(len(p["messages"]) for p in pages) == 22
    assert time.monotonic() - started >= 2 / 20
    assert json.dumps(pages)  # plain JSON, no surrogates
    await alice.disconnect()


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
FRAMES = st.one_of(
    st.text(max_size=100),
    JSON_VALUES.map(json.dumps),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["message", "history", "resume", "typing"])},
        optional={"body": JSON_VALUES, "client_id": JSON_VALUES, "before": JSON_VALUES},
    ).map(json.dumps),
    st.sampled_from(
        [
            '{"type": "message", "body": "\\ud800"}',
            '{"type": "message", "body": "a\\u0000b"}',
            "[" * 20000 + "]" * 20000,
            '{"type": "resume", "after": ' + "9" * 4000 + "}",
        ]
    ),
)


@pytest.fixture
def one_socket(room, join, settings):
    """One socket shared by every example of a property test (connected on first use)."""
    settings.CHAT_RATE_MESSAGES = 0
    return {"room": room, "join": join, "probe": 0}


@hyp_settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frame=FRAMES)
async def test_arbitrary_frames_never_close_the_socket(one_socket, frame):
    """Property: whatever text a client sends (under 64 KiB), the one socket answers and stays."""
    if "alice" not in one_socket:
        one_socket["alice"], _, _ = await one_socket["join"](one_socket["room"].alice)
    alice = one_socket["alice"]
    one_socket["probe"] += 1
    marker = f"probe-{one_socket['probe']}"
    await alice.send_input({"type": "websocket.receive", "text": frame})
    # An unknown type answers an error naming it: every frame before it was handled.
    await alice.send_json_to({"type": marker})
    while True:
        output = await alice.receive_output(5)
        assert output["type"] == "websocket.send", (frame, output)
        if marker in output.get("text", ""):
            break
