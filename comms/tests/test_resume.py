"""A join that does not repeat, and a room delivered in id order on every socket.

`?after=<id>` replaces the join history; what a socket has sent is a range of ids,
not a capped set; live messages that overtake the room's earlier one wait for it,
or for the store.
"""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from comms.delivery import LATE_MESSAGE_WAIT
from comms.events import message_event
from comms.models import Message
from comms.services import message_post
from streams.hub import publish

pytestmark = pytest.mark.django_db(transaction=True)


def post(room, n: int, prefix: str = "m") -> list[int]:
    return [
        message_post(team=room.team, author=room.bob, body=f"{prefix}{i}")[0].id for i in range(n)
    ]


def store_silently(room, n: int) -> list[Message]:
    """Store messages without publishing them (as if every publish had been lost)."""
    return Message.objects.bulk_create(
        [Message(team=room.team, author=room.bob, body=f"s{i}") for i in range(n)]
    )


async def connect(ws_app, user, path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(ws_app, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    return communicator


async def test_connect_with_after_sends_only_what_came_after_instead_of_the_history(room, ws_app):
    ids = await sync_to_async(post)(room, 4)
    alice = await connect(ws_app, room.alice, f"/ws/comms/ops/?after={ids[1]}")
    first = await alice.receive_json_from()
    assert first["type"] == "resume"
    assert first["after"] == ids[1] and first["more"] is False
    assert [m["id"] for m in first["messages"]] == ids[2:]
    assert (await alice.receive_json_from())["type"] == "presence"
    # Live messages follow; what the client had is never sent again, even on resume.
    (new_id,) = await sync_to_async(post)(room, 1, "live")
    frame = await alice.receive_json_from()
    assert frame["type"] == "message" and frame["id"] == new_id
    await alice.send_json_to({"type": "resume", "after": ids[1]})
    assert (await alice.receive_json_from())["messages"] == []
    await alice.disconnect()


async def test_connect_with_the_newest_id_sends_no_message_at_all(room, ws_app):
    ids = await sync_to_async(post)(room, 3)
    alice = await connect(ws_app, room.alice, f"/ws/comms/ops?after={ids[-1]}")
    assert await alice.receive_json_from() == {
        "type": "resume",
        "after": ids[-1],
        "messages": [],
        "more": False,
    }
    assert (await alice.receive_json_from())["type"] == "presence"
    await alice.disconnect()


async def test_a_bad_after_is_refused_with_an_error_and_the_history_is_sent(room, ws_app):
    await sync_to_async(post)(room, 2)
    alice = await connect(ws_app, room.alice, "/ws/comms/ops/?after=%C2%B2")
    error = await alice.receive_json_from()
    assert error["type"] == "error" and error["code"] == "bad_field"
    history = await alice.receive_json_from()
    assert history["type"] == "history" and len(history["messages"]) == 2
    await alice.disconnect()


async def test_resume_memory_is_not_capped_at_a_thousand_ids(room, ws_app):
    # 1,200 messages sent on one socket by resume (3 pages), then asked for again.
    alice = await connect(ws_app, room.alice, "/ws/comms/ops/")
    await alice.receive_json_from()  # history (empty)
    await alice.receive_json_from()  # presence
    stored = await sync_to_async(store_silently)(room, 1200)
    await alice.send_json_to({"type": "resume", "after": 0})
    got = []
    while True:
        frame = await alice.receive_json_from()
        got += [m["id"] for m in frame["messages"]]
        if not frame["more"]:
            break
    assert got == [m.id for m in stored]
    await alice.send_json_to({"type": "resume", "after": 0})
    frame = await alice.receive_json_from()
    assert frame["messages"] == [] and frame["more"] is False
    await alice.disconnect()


async def test_live_messages_that_overtake_an_earlier_one_are_sent_in_id_order(room, ws_app):
    alice = await connect(ws_app, room.alice, "/ws/comms/ops/")
    await alice.receive_json_from()
    await alice.receive_json_from()
    first, second = await sync_to_async(store_silently)(room, 2)
    # Another worker's publish of the second message arrives before the first's.
    await publish("room.ops", message_event(second, prev=first.id, team_slug="ops"))
    assert await alice.receive_nothing(0.1)
    await publish("room.ops", message_event(first, prev=0, team_slug="ops"))
    assert (await alice.receive_json_from())["id"] == first.id
    assert (await alice.receive_json_from())["id"] == second.id
    await alice.disconnect()


async def test_a_message_whose_publish_was_lost_is_read_from_the_store(room, ws_app):
    alice = await connect(ws_app, room.alice, "/ws/comms/ops/")
    await alice.receive_json_from()
    await alice.receive_json_from()
    lost, second = await sync_to_async(store_silently)(room, 2)
    await publish("room.ops", message_event(second, prev=lost.id, team_slug="ops"))
    started = asyncio.get_running_loop().time()
    frames = [await alice.receive_json_from(2) for _ in range(2)]
    assert [f["id"] for f in frames] == [lost.id, second.id]
    assert asyncio.get_running_loop().time() - started >= LATE_MESSAGE_WAIT * 0.9
    # The live event of the lost one, should it come late after all, is not repeated.
    await publish("room.ops", message_event(lost, prev=0, team_slug="ops"))
    assert await alice.receive_nothing(0.2)
    await alice.disconnect()


async def test_a_batch_of_one_sender_carries_each_message_s_predecessor(room, ws_app):
    from streams.hub import subscribe

    (before,) = await sync_to_async(post)(room, 1)
    alice = await connect(ws_app, room.alice, "/ws/comms/ops/")
    await alice.receive_json_from()
    await alice.receive_json_from()
    async with subscribe("room.ops") as probe:
        for i in range(5):
            await alice.send_json_to({"type": "message", "body": f"x{i}", "client_id": f"c{i}"})
        events = []
        while len(events) < 5:
            event = await asyncio.wait_for(probe.get(), 5)
            if event["event"] == "message":
                events.append(event)
    prevs = [before] + [e["id"] for e in events[:-1]]
    assert [e["prev"] for e in events] == prevs
    await alice.disconnect()
