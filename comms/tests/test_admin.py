from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from accounts.tests.factories import UserFactory
from comms.models import Membership, Message
from comms.tests.factories import TeamFactory

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def admin_client_(room):
    admin = UserFactory(username="boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    return client


def test_announcement_action_asks_for_the_text_then_posts_to_each_selected_room(
    room, admin_client_
):
    other = TeamFactory(slug="sci", name="Science")
    TeamFactory(slug="unselected")
    selected = {"action": "post_announcement", "_selected_action": [room.team.pk, other.pk]}
    form = admin_client_.post("/admin/comms/team/", selected)
    assert form.status_code == 200
    assert b"Post to 2 room(s)" in form.content
    assert not Message.objects.exists()

    done = admin_client_.post(
        "/admin/comms/team/", {**selected, "post": "yes", "body": "  Drive at 14:00  "}
    )
    assert done.status_code == 302
    stored = Message.objects.order_by("team__slug")
    assert [(m.team.slug, m.kind, m.author, m.body) for m in stored] == [
        ("ops", "system", None, "Drive at 14:00"),
        ("sci", "system", None, "Drive at 14:00"),
    ]


def test_announcement_with_an_empty_text_shows_the_form_again(room, admin_client_):
    response = admin_client_.post(
        "/admin/comms/team/",
        {"action": "post_announcement", "_selected_action": [room.team.pk], "post": "yes"},
    )
    assert response.status_code == 200
    assert b"This field is required" in response.content
    assert not Message.objects.exists()


def test_messages_are_read_only_and_filterable(room, admin_client_):
    Message.objects.create(team=room.team, author=room.bob, body="hi <b>there</b>")
    listing = admin_client_.get(
        f"/admin/comms/message/?kind__exact=chat&team__id__exact={room.team.pk}"
    )
    assert listing.status_code == 200
    assert b"hi &lt;b&gt;there&lt;/b&gt;" in listing.content
    assert admin_client_.get("/admin/comms/message/add/").status_code == 403
    message = Message.objects.get()
    page = admin_client_.get(f"/admin/comms/message/{message.pk}/change/")
    assert page.status_code == 200
    assert b'name="body"' not in page.content  # shown, not editable


def test_team_search_finds_members(room, admin_client_):
    TeamFactory(slug="empty", name="Empty")
    response = admin_client_.get("/admin/comms/team/?q=bob")
    assert b"Ops" in response.content and b"Empty" not in response.content


async def test_deleting_a_member_in_the_admin_inline_closes_their_socket(room, join, admin_client_):
    bob, _, _ = await join(room.bob)
    alice_membership = await Membership.objects.aget(team=room.team, user=room.alice)
    bob_membership = await Membership.objects.aget(team=room.team, user=room.bob)
    data = {
        "name": "Ops",
        "slug": "ops",
        "description": "A test team.",
        "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "2",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        "memberships-0-id": str(alice_membership.pk),
        "memberships-0-team": str(room.team.pk),
        "memberships-0-user": str(room.alice.pk),
        "memberships-0-role": "lead",
        "memberships-1-id": str(bob_membership.pk),
        "memberships-1-team": str(room.team.pk),
        "memberships-1-user": str(room.bob.pk),
        "memberships-1-role": "member",
        "memberships-1-DELETE": "on",
    }
    response = await sync_to_async(admin_client_.post)(
        f"/admin/comms/team/{room.team.pk}/change/", data
    )
    assert response.status_code == 302, response.content[:2000]
    assert await bob.receive_output(1) == {"type": "websocket.close", "code": 4403}
    await bob.disconnect()
    assert not await Membership.objects.filter(user=room.bob).aexists()
