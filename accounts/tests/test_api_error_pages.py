"""Errors Django answers before (or instead of) a view: JSON on the API, HTML on pages."""

from __future__ import annotations

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db


@pytest.fixture
def api(user_factory, token_for):
    token = token_for(user_factory(perms=("rover.add_roverimage",)))
    return Client(headers={"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize(
    "path",
    [
        "/api/nope",
        "/api/images/abc/download",
        "/api/rovers/curiosity/uploads/a/b",
        "/stream/nope",
    ],
)
def test_an_unknown_api_path_is_404_json(api, path):
    response = api.get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == "not_found"


def test_an_unknown_page_keeps_the_html_404():
    response = Client().get("/nope")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
