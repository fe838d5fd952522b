"""TeamRoomConsumer through WebsocketCommunicator (in-process; see test_realtime for servers)."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser

from accounts.tests.factories import UserFactory
from comms.models import Message
from comms.services import (
    message_post,
    message_post_system,
    team_member_add,
    team_member_remove,
)

pytestmark = pytest.mark.django_db(transaction=True)


async def closed_with(ws_app, user, path: str) -> int:
    communicator = WebsocketCommunicator(ws_app, path)
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    # Accepted, then closed at once with the code (see comms.consumers).
    assert connected
    output = await communicator.receive_output(2)
    await communicator.disconnect()
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_anonymous_is_closed_4401(room, ws_app):
    assert await closed_with(ws_app, AnonymousUser(), "/ws/comms/ops/") == 4401


async def test_unknown_team_is_closed_4404(room, ws_app):
    assert await closed_with(ws_app, room.alice, "/ws/comms/nope/") == 4404


async def test_non_member_is_closed_4403(room, ws_app):
    assert await closed_with(ws_app, room.carol, "/ws/comms/ops/") == 4403


async def test_staff_without_the_permission_is_closed_4403(room, ws_app):
    staff = await sync_to_async(UserFactory)(username="staffer", is_staff=True)
    assert await closed_with(ws_app, staff, "/ws/comms/ops/") == 4403


async def test_staff_with_view_message_may_join_any_room(room, join, user_factory):
    staff = await sync_to_async(user_factory)("inspector", perms=("comms.view_message",))
    staff.is_staff = True
    communicator, _, presence = await join(staff)
    assert [u["username"] for u in presence["online"]] == ["inspector"]
    await communicator.disconnect()


async def test_path_without_trailing_slash_joins(room, join):
    communicator, history, _ = await join(room.alice, path="/ws/comms/ops")
    assert history["messages"] == []
    await communicator.disconnect()


async def test_join_sends_last_50_messages_and_history_pages_back(room, join):
    def post_many():
        for i in range(60):
            message_post(team=room.team, author=room.bob, body=f"m{i}")

    await sync_to_async(post_many)()
    communicator, history, _ = await join(room.alice)
    bodies = [m["body"] for m in history["messages"]]
    assert bodies == [f"m{i}" for i in range(10, 60)]
    assert history["has_more"] is True
    await communicator.send_json_to({"type": "history", "before": history["messages"][0]["id"]})
    page = await communicator.receive_json_from()
    assert page["type"] == "history"
    assert [m["body"] for m in page["messages"]] == [f"m{i}" for i in range(10)]
    assert page["has_more"] is False
    await communicator.disconnect()


async def test_message_is_stored_then_broadcast_to_every_member(room, join):
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()  # bob's presence
    await alice.send_json_to({"type": "message", "body": " <script>x</script> ", "client_id": "k1"})
    for communicator in (alice, bob):
        frame = await communicator.receive_json_from()
        assert frame["type"] == "message", frame
        stored = await Message.objects.aget(pk=frame["id"])
        assert frame == {
            "type": "message",
            "id": stored.id,
            "team": "ops",
            "author": {"id": room.alice.pk, "username": "alice"},
            "body": "<script>x</script>",
            "kind": "chat",
            "created_at": frame["created_at"],
            "client_id": "k1",
        }
        assert stored.body == "<script>x</script>"
    await alice.disconnect()
    await bob.disconnect()


async def test_plain_text_frame_is_posted_as_a_message(room, join):
    alice, _, _ = await join(room.alice)
    await alice.send_to(text_data="hello from wscat")
    frame = await alice.receive_json_from()
    assert frame["type"] == "message"
    assert frame["body"] == "hello from wscat"
    assert frame["client_id"] is None
    await alice.disconnect()


async def test_resent_client_id_is_not_stored_or_broadcast_twice(room, join):
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()
    await alice.send_json_to({"type": "message", "body": "go", "client_id": "once"})
    first = await alice.receive_json_from()
    assert (await bob.receive_json_from())["id"] == first["id"]
    await alice.send_json_to({"type": "message", "body": "go", "client_id": "once"})
    assert await alice.receive_nothing(0.2)
    assert await bob.receive_nothing(0.1)
    await alice.disconnect()
    # A resend from a new socket (the ack was lost) gets the stored message back.
    again, _, _ = await join(room.alice)
    await again.send_json_to({"type": "history", "before": 1})  # flush: history of nothing
    await again.receive_json_from()
    assert await Message.objects.filter(client_id="once").acount() == 1
    await again.disconnect()
    await bob.disconnect()


async def test_resend_answers_with_the_stored_message_when_not_yet_seen(room, join):
    def post_and_bury():
        original, _ = message_post(team=room.team, author=room.alice, body="orig", client_id="c9")
        for i in range(50):
            message_post(team=room.team, author=room.bob, body=f"later {i}")
        return original

    original = await sync_to_async(post_and_bury)()
    alice, history, _ = await join(room.alice)
    assert original.id not in {m["id"] for m in history["messages"]}
    await alice.send_json_to({"type": "message", "body": "orig", "client_id": "c9"})
    frame = await alice.receive_json_from()
    assert frame["id"] == original.id and frame["client_id"] == "c9"
    assert await Message.objects.filter(client_id="c9").acount() == 1
    # Sent once on this socket: neither another resend nor a resume repeats it.
    await alice.send_json_to({"type": "message", "body": "orig", "client_id": "c9"})
    assert await alice.receive_nothing(0.2)
    await alice.send_json_to({"type": "resume", "after": 0})
    resumed = await alice.receive_json_from()
    assert resumed["messages"] == [] and resumed["more"] is False
    await alice.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ('{"type": "message", "body": ', "invalid_json"),
        ("[1, 2]", "invalid_json"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"body": "no type"}', "unknown_type"),
        ('{"type": "message", "body": "   "}', "empty_body"),
        (json.dumps({"type": "message", "body": "x" * 4001}), "body_too_long"),
        ('{"type": "message", "body": 42}', "bad_field"),
        ('{"type": "message", "body": "ok", "client_id": 7}', "bad_field"),
        ('{"type": "history", "before": "x"}', "bad_field"),
        ('{"type": "resume"}', "bad_field"),
        ('{"type": "resume", "after": true}', "bad_field"),
    ],
)
async def test_bad_input_answers_an_error_and_keeps_the_connection(room, join, frame, code):
    alice, _, _ = await join(room.alice)
    await alice.send_to(text_data=frame)
    error = await alice.receive_json_from()
    assert error["type"] == "error"
    assert error["code"] == code
    assert error["detail"]
    await alice.send_json_to({"type": "message", "body": "still here"})
    assert (await alice.receive_json_from())["body"] == "still here"
    assert await Message.objects.acount() == 1
    await alice.disconnect()


async def test_refused_message_error_names_its_client_id(room, join):
    alice, _, _ = await join(room.alice)
    await alice.send_json_to({"type": "message", "body": "   ", "client_id": "c-1"})
    error = await alice.receive_json_from()
    assert (error["code"], error["client_id"]) == ("empty_body", "c-1")
    await alice.send_json_to({"type": "message", "body": "   ", "client_id": 7})
    assert "client_id" not in await alice.receive_json_from()
    await alice.disconnect()
    assert await Message.objects.acount() == 0


async def test_binary_frame_is_an_error(room, join):
    alice, _, _ = await join(room.alice)
    await alice.send_to(bytes_data=b"\x00\x01")
    assert (await alice.receive_json_from())["code"] == "binary_frame"
    await alice.disconnect()


async def test_rate_limit_per_user_across_sockets(room, join, settings):
    settings.CHAT_RATE_MESSAGES = 3
    settings.CHAT_RATE_SECONDS = 60
    first, _, _ = await join(room.alice)
    second, _, _ = await join(room.alice)
    await first.receive_json_from()  # presence of the second socket
    for i in range(3):
        socket = first if i % 2 == 0 else second
        await socket.send_json_to({"type": "message", "body": f"n{i}"})
    for _ in range(3):
        assert (await first.receive_json_from())["type"] == "message"
    await second.send_json_to({"type": "message", "body": "one too many", "client_id": "c-4"})
    # second got the 3 messages first, then the refusal, naming the refused message.
    frames = [await second.receive_json_from() for _ in range(4)]
    assert frames[-1]["code"] == "rate_limited"
    assert frames[-1]["client_id"] == "c-4"
    assert await Message.objects.acount() == 3
    await first.disconnect()
    await second.disconnect()


async def test_frame_over_64_kib_closes_1009(room, join):
    alice, _, _ = await join(room.alice)
    await alice.send_to(text_data="x" * (64 * 1024 + 1))
    output = await alice.receive_output(2)
    assert output == {"type": "websocket.close", "code": 1009}
    await alice.disconnect()
    assert await Message.objects.acount() == 0


async def test_presence_join_and_leave_reach_the_others(room, join):
    alice, _, presence = await join(room.alice)
    assert presence["online"] == [{"id": room.alice.pk, "username": "alice"}]
    bob, _, bob_presence = await join(room.bob)
    assert [u["username"] for u in bob_presence["online"]] == ["alice", "bob"]
    update = await alice.receive_json_from()
    assert update == {"type": "presence", "joined": {"id": room.bob.pk, "username": "bob"}}
    assert await bob.receive_nothing(0.1)  # no echo of its own join
    await bob.disconnect()
    update = await alice.receive_json_from()
    assert update == {"type": "presence", "left": {"id": room.bob.pk, "username": "bob"}}
    await alice.disconnect()


async def test_a_second_tab_closing_does_not_announce_a_leave(room, join):
    alice, _, _ = await join(room.alice)
    bob_tab1, _, _ = await join(room.bob)
    bob_tab2, _, _ = await join(room.bob)
    assert (await alice.receive_json_from())["joined"]["username"] == "bob"
    assert (await alice.receive_json_from())["joined"]["username"] == "bob"
    await bob_tab2.disconnect()
    assert await alice.receive_nothing(0.2)
    await bob_tab1.disconnect()
    assert (await alice.receive_json_from())["left"]["username"] == "bob"
    await alice.disconnect()


async def test_typing_reaches_others_but_is_not_stored(room, join):
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()
    await alice.send_json_to({"type": "typing"})
    assert await bob.receive_json_from() == {
        "type": "typing",
        "user": {"id": room.alice.pk, "username": "alice"},
    }
    assert await alice.receive_nothing(0.1)
    assert await Message.objects.acount() == 0
    await alice.disconnect()
    await bob.disconnect()


async def test_resume_after_reconnect_delivers_each_missed_message_exactly_once(room, join):
    alice, _, _ = await join(room.alice)
    await alice.send_json_to({"type": "message", "body": "before"})
    last_seen = (await alice.receive_json_from())["id"]
    await alice.disconnect()

    def post_in_between():
        return [
            message_post(team=room.team, author=room.bob, body=f"missed {i}")[0].id
            for i in range(55)
        ]

    missed = await sync_to_async(post_in_between)()
    alice, history, _ = await join(room.alice)
    await alice.send_json_to({"type": "resume", "after": last_seen})
    resumed = await alice.receive_json_from()
    assert resumed["type"] == "resume" and resumed["more"] is False
    got = [m["id"] for m in history["messages"] if m["id"] > last_seen]
    got += [m["id"] for m in resumed["messages"]]
    assert sorted(got) == missed
    assert len(got) == len(set(got)) == 55
    # Then live, without repeating anything.
    await sync_to_async(message_post)(team=room.team, author=room.bob, body="live")
    live = await alice.receive_json_from()
    assert live["body"] == "live" and live["id"] not in got
    assert await alice.receive_nothing(0.2)
    await alice.disconnect()


async def test_resume_sends_exactly_the_messages_after_the_id(room, join):
    def post(n):
        return [message_post(team=room.team, author=room.bob, body=f"b{i}")[0].id for i in range(n)]

    ids = await sync_to_async(post)(3)
    alice, history, _ = await join(room.alice)
    assert [m["id"] for m in history["messages"]] == ids
    # Everything after ids[0] was in the join history already: nothing is repeated.
    await alice.send_json_to({"type": "resume", "after": ids[0]})
    assert (await alice.receive_json_from())["messages"] == []
    await alice.disconnect()


async def test_removing_the_member_closes_their_socket_within_a_second(room, join):
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()
    await sync_to_async(team_member_remove)(team=room.team, user=room.bob)
    output = await bob.receive_output(1)
    assert output == {"type": "websocket.close", "code": 4403}
    await bob.disconnect()
    # alice stays, and hears that bob is no longer a member, at once no longer online
    # (a presence change from the removal itself), and then that his socket left.
    frames = [await alice.receive_json_from() for _ in range(3)]
    assert {"type": "members", "removed": {"id": room.bob.pk, "username": "bob"}} in frames
    alice_json = {"id": room.alice.pk, "username": "alice"}
    assert {"type": "presence", "online": [alice_json]} in frames
    assert {"type": "presence", "left": {"id": room.bob.pk, "username": "bob"}} in frames
    await alice.disconnect()


async def test_removing_a_member_changes_presence_even_if_their_socket_hangs(room, join):
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()  # bob joined
    # bob's socket never completes the close (a dead network): presence does not wait.
    await sync_to_async(team_member_remove)(team=room.team, user=room.bob)
    frames = [await alice.receive_json_from() for _ in range(2)]
    assert frames[1] == {"type": "presence", "online": [{"id": room.alice.pk, "username": "alice"}]}
    await alice.disconnect()
    await bob.disconnect()


async def test_a_new_member_is_announced_to_the_room(room, join):
    alice, _, _ = await join(room.alice)
    await sync_to_async(team_member_add)(team=room.team, user=room.carol)
    assert await alice.receive_json_from() == {
        "type": "members",
        "added": {"id": room.carol.pk, "username": "carol"},
    }
    # and a presence change: who is online now, from the shared presence store.
    assert await alice.receive_json_from() == {
        "type": "presence",
        "online": [{"id": room.alice.pk, "username": "alice"}],
    }
    await alice.disconnect()


async def test_system_and_alarm_messages_arrive_in_the_room(room, join):
    alice, _, _ = await join(room.alice)
    await sync_to_async(message_post_system)(team=room.team, body="Battery low", kind="alarm")
    frame = await alice.receive_json_from()
    assert frame["kind"] == "alarm" and frame["author"] is None and frame["body"] == "Battery low"
    await alice.disconnect()


async def test_token_in_query_string_authenticates_through_the_real_application(room, token_for):
    from mission_control.asgi import application

    token = await sync_to_async(token_for)(room.alice)
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    communicator = WebsocketCommunicator(
        application, f"/ws/comms/ops/?token={token}", headers=headers
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "history"
    await communicator.disconnect()
    bad = WebsocketCommunicator(application, "/ws/comms/ops/?token=mc_wrong", headers=headers)
    assert (await bad.connect())[0]
    assert (await bad.receive_output(2))["code"] == 4401
    await bad.disconnect()


async def test_a_client_without_origin_may_connect_but_another_site_may_not(room, token_for):
    """wscat sends no Origin header; a browser on another site sends its own."""
    from mission_control.asgi import application

    token = await sync_to_async(token_for)(room.alice)
    wscat = WebsocketCommunicator(application, f"/ws/comms/ops?token={token}")
    assert (await wscat.connect())[0]
    assert (await wscat.receive_json_from())["type"] == "history"
    await wscat.disconnect()
    foreign = WebsocketCommunicator(
        application, f"/ws/comms/ops?token={token}", headers=[(b"origin", b"https://evil.example")]
    )
    connected, _ = await foreign.connect()
    assert not connected
    await foreign.disconnect()


async def test_messages_sent_back_to_back_are_stored_and_delivered_in_order_once(
    room, join, settings
):
    """The consumer stores queued frames in batches; order and exactly-once still hold."""
    settings.CHAT_RATE_MESSAGES = 0
    alice, _, _ = await join(room.alice)
    bob, _, _ = await join(room.bob)
    await alice.receive_json_from()  # bob's presence
    bodies = [f"burst {i}" for i in range(30)]
    for i, body in enumerate(bodies):
        await alice.send_json_to({"type": "message", "body": body, "client_id": f"b{i}"})
    await alice.send_json_to({"type": "message", "body": "burst 0", "client_id": "b0"})  # resend
    received = [await bob.receive_json_from(5) for _ in bodies]
    assert [f["body"] for f in received] == bodies
    ids = [f["id"] for f in received]
    assert ids == sorted(ids)
    assert await Message.objects.filter(team=room.team).acount() == len(bodies)
    await alice.disconnect()
    await bob.disconnect()
