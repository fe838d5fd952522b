"""Reading a room is not writing in it: a view permission never lets staff post."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from comms.models import Message
from comms.selectors import team_user_can_join, team_user_can_post
from comms.services import NotAllowed, messages_post_async


@pytest.fixture
async def inspector(room, user_factory):
    """Staff holding comms.view_message, in no team."""
    return await sync_to_async(user_factory)(
        "inspector", perms=("comms.view_message",), is_staff=True
    )


async def test_staff_reading_any_room_get_read_only_and_keep_their_socket(room, join, inspector):
    staff, _, _ = await join(inspector)
    await staff.send_json_to({"type": "message", "body": "let me in", "client_id": "x1"})
    answer = await staff.receive_json_from()
    assert answer["type"] == "error" and answer["code"] == "read_only"
    # Still reading: a member's message reaches the inspector.
    alice, _, _ = await join(room.alice)
    await alice.send_json_to({"type": "message", "body": "status nominal"})
    while (frame := await staff.receive_json_from())["type"] != "message":
        pass
    assert frame["body"] == "status nominal"
    assert await sync_to_async(list)(Message.objects.values_list("body", flat=True)) == [
        "status nominal"
    ]
    await staff.disconnect()
    await alice.disconnect()


@pytest.mark.django_db
def test_post_rule_members_only_even_for_superusers(room, user_factory):
    root = user_factory("root", is_staff=True, is_superuser=True)
    assert team_user_can_join(team=room.team, user=root)
    assert not team_user_can_post(team=room.team, user=root)
    assert team_user_can_post(team=room.team, user=room.bob)
    assert not team_user_can_post(team=room.team, user=room.carol)


async def test_the_service_refuses_a_non_member_whatever_the_caller(room, inspector):
    from comms.services import OrderedPublisher

    with pytest.raises(NotAllowed):
        await messages_post_async(
            team=room.team, author=inspector, items=[("hi", None)], publisher=OrderedPublisher()
        )
    assert not await Message.objects.aexists()
