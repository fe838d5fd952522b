"""A method a JSON or SSE route does not serve answers 405 in JSON, with `Allow`.

Before, `require_GET` answered an empty `text/html` 405 on the API's list routes
(and refused HEAD), and the SSE feeds opened a stream for any method (a POST
included).
"""

from __future__ import annotations

import pytest

from comms.tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db

GET_ROUTES = [
    "/api/rovers",
    "/api/rovers/curiosity/alarms",
    "/api/teams",
    "/api/teams/engineering/messages",
]
FEEDS = ["/stream/rover-telemetry", "/rovers/curiosity/telemetry/stream"]
# Files: the seed's newest image, a download and a thumbnail (GET and HEAD only).
FILES = ["/stream/rover-image", "/api/images/1/download", "/api/images/1/thumbnail"]


@pytest.fixture
def member_client(client, rover, user_factory):
    user = user_factory("member")
    MembershipFactory(team=rover.alarm_team, user=user)
    client.force_login(user)
    return client


@pytest.mark.parametrize("path", GET_ROUTES + FEEDS + FILES)
@pytest.mark.parametrize("method", ["post", "put", "delete", "options"])
def test_other_methods_answer_405_json_with_allow(member_client, path, method):
    response = getattr(member_client, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "method_not_allowed"
    assert "GET" in response["Allow"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_answers_as_get_does(member_client, path):
    assert member_client.head(path).status_code == 200
