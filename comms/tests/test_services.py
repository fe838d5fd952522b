from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from accounts.tests.factories import UserFactory
from comms.models import Membership, Message
from comms.services import (
    MessageInvalid,
    message_post,
    message_post_system,
    team_member_add,
    team_member_remove,
)
from comms.tests.factories import MembershipFactory, TeamFactory
from streams.hub import subscribe

pytestmark = pytest.mark.django_db(transaction=True)


async def test_message_post_system_stores_then_publishes_on_the_room_stream():
    team = await sync_to_async(TeamFactory)(slug="eng")
    async with subscribe("room.eng") as sub:
        message = await sync_to_async(message_post_system)(
            team=team, body=" Low battery ", kind="alarm"
        )
        event = await asyncio.wait_for(sub.get(), 5)
    assert event["event"] == "message"
    assert event["id"] == message.id
    data = json.loads(event["data"])
    assert data == {
        "type": "message",
        "id": message.id,
        "team": "eng",
        "author": None,
        "body": "Low battery",
        "kind": "alarm",
        "created_at": data["created_at"],
        "client_id": None,
    }
    assert await Message.objects.filter(pk=message.id, kind="alarm").aexists()


def test_message_post_system_refuses_a_chat_kind():
    team = TeamFactory()
    with pytest.raises(ValueError):
        message_post_system(team=team, body="x", kind="chat")
    assert not Message.objects.exists()


def test_message_post_strips_the_body_and_refuses_empty_or_too_long():
    team = TeamFactory()
    user = UserFactory()
    message, created = message_post(team=team, author=user, body="  hello  ")
    assert created and message.body == "hello"
    with pytest.raises(MessageInvalid) as empty:
        message_post(team=team, author=user, body="   ")
    assert empty.value.code == "empty_body"
    with pytest.raises(MessageInvalid) as long:
        message_post(team=team, author=user, body="x" * 4001)
    assert long.value.code == "body_too_long"
    with pytest.raises(MessageInvalid) as bad:
        message_post(team=team, author=user, body=5)
    assert bad.value.code == "bad_field"
    message_post(team=team, author=user, body="x" * 4000)
    assert Message.objects.count() == 2


def test_message_post_resend_with_the_same_client_id_returns_the_stored_message():
    team = TeamFactory()
    user = UserFactory()
    first, created = message_post(team=team, author=user, body="go", client_id="c-1")
    again, created_again = message_post(team=team, author=user, body="go (resent)", client_id="c-1")
    assert created and not created_again
    assert again.id == first.id and again.body == "go"
    other, created_other = message_post(team=team, author=UserFactory(), body="go", client_id="c-1")
    assert created_other and other.id != first.id


def test_concurrent_resends_store_one_message():
    team = TeamFactory()
    user = UserFactory()
    results: list[tuple[int, bool]] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        try:
            barrier.wait()
            message, created = message_post(team=team, author=user, body="race", client_id="same")
            results.append((message.id, created))
        finally:
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert len({message_id for message_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert Message.objects.filter(client_id="same").count() == 1


async def test_removing_a_member_publishes_the_control_event():
    membership = await sync_to_async(MembershipFactory)(team__slug="nav")
    team, user = membership.team, membership.user
    async with subscribe("room.nav") as sub:
        assert await sync_to_async(team_member_remove)(team=team, user=user)
        event = await asyncio.wait_for(sub.get(), 5)
    assert event["event"] == "member_removed" and event["user_id"] == user.pk
    assert json.loads(event["data"]) == {
        "type": "members",
        "removed": {"id": user.pk, "username": user.username},
    }
    assert not await Membership.objects.filter(team=team, user=user).aexists()


def test_team_member_add_is_idempotent_and_updates_the_role():
    team = TeamFactory()
    user = UserFactory()
    team_member_add(team=team, user=user)
    membership = team_member_add(team=team, user=user, role=Membership.Role.LEAD)
    assert membership.role == "lead"
    assert Membership.objects.filter(team=team, user=user).count() == 1


async def test_sync_writes_called_inside_a_running_loop_still_store_and_publish(monkeypatch):
    """Sync code called straight from async code (no sync_to_async) cannot use async_to_sync."""
    from django.db import connections

    team = await sync_to_async(TeamFactory)(slug="loop")
    # The sync ORM in this thread, as some callers (Playwright's sync API) do.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    async with subscribe("room.loop") as sub:
        try:
            message = message_post_system(team=team, body="from a loop thread")
        finally:
            connections.close_all()
        event = await asyncio.wait_for(sub.get(), 5)
    assert event["id"] == message.id


def test_a_room_s_ids_commit_in_id_order_writers_wait_for_the_room(room):
    """A writer holding the room stores its message before any writer that came later.

    Without the room lock a later writer takes a lower id and may commit it after
    (PostgreSQL checks the team foreign key only at commit), and a socket that sent
    the higher id could never tell that a lower one was still coming.
    """
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has one writer at a time anyway (MC_TEST_SERVICES=1 runs this)")
    from django.db import connections, transaction

    from comms.services import _room_lock, messages_post_async
    from streams.hub import OrderedPublisher

    holding, release = threading.Event(), threading.Event()
    ids: dict[str, int] = {}
    done: dict[str, threading.Event] = {"post": threading.Event(), "batch": threading.Event()}

    def open_writer() -> None:
        # Holds the room, then stores: whoever came meanwhile must get a higher id.
        try:
            with transaction.atomic():
                _room_lock(room.team)
                holding.set()
                release.wait(5)
                ids["first"] = Message.objects.create(team=room.team, body="first").id
        finally:
            connections.close_all()

    def post() -> None:
        try:
            ids["post"] = message_post(team=room.team, author=room.bob, body="second")[0].id
            done["post"].set()
        finally:
            connections.close_all()

    def batch() -> None:
        async def store() -> int:
            items = [("third", None)]
            results = await messages_post_async(
                team=room.team, author=room.bob, items=items, publisher=OrderedPublisher()
            )
            return results[0][0].id

        try:
            ids["batch"] = asyncio.run(store())
            done["batch"].set()
        finally:
            connections.close_all()

    threads = [threading.Thread(target=f) for f in (open_writer, post, batch)]
    threads[0].start()
    assert holding.wait(5)
    threads[1].start()
    threads[2].start()
    assert not done["post"].wait(0.5), "message_post did not wait for the room"
    assert not done["batch"].is_set(), "messages_post_async did not wait for the room"
    release.set()
    for thread in threads:
        thread.join(10)
    assert done["post"].is_set() and done["batch"].is_set()
    assert ids["first"] < ids["post"] and ids["first"] < ids["batch"]
