from __future__ import annotations

import pytest

from comms.services import message_post
from comms.tests.factories import TeamFactory

pytestmark = pytest.mark.django_db


def test_history_api_needs_authentication(client, room):
    response = client.get("/api/teams/ops/messages")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_history_api_refuses_non_members_and_unknown_teams(client, room):
    client.force_login(room.carol)
    assert client.get("/api/teams/ops/messages").status_code == 403
    client.force_login(room.alice)
    response = client.get("/api/teams/nope/messages")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_history_api_pages_back_with_before_and_limit(client, room, token_for):
    ids = [message_post(team=room.team, author=room.bob, body=f"m{i}")[0].id for i in range(60)]
    headers = {"Authorization": f"Bearer {token_for(room.alice)}"}
    page = client.get("/api/teams/ops/messages", headers=headers).json()
    assert [m["id"] for m in page["messages"]] == ids[10:]
    assert page["has_more"] is True
    assert page["messages"][0]["author"] == {"id": room.bob.pk, "username": "bob"}
    older = client.get(f"/api/teams/ops/messages?before={ids[10]}&limit=4", headers=headers).json()
    assert [m["id"] for m in older["messages"]] == ids[6:10]
    assert older["has_more"] is True


@pytest.mark.parametrize("query", ["before=x", "limit=0", "limit=500", "before=-3"])
def test_history_api_rejects_bad_parameters(client, room, query):
    client.force_login(room.alice)
    response = client.get(f"/api/teams/ops/messages?{query}")
    assert response.status_code == 400
    assert response.json()["error"] == "bad_parameter"


def test_team_list_shows_only_the_users_teams(client, room):
    TeamFactory(slug="other")
    client.force_login(room.bob)
    assert client.get("/api/teams").json() == {
        "teams": [
            {
                "slug": "ops",
                "name": "Ops",
                "description": "A test team.",
                "socket": "/ws/comms/ops/",
            }
        ]
    }
    assert client.post("/api/teams").status_code == 405
