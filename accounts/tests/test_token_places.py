"""Where a token counts: the API only; CSRF failures on the API answer JSON."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.paths import token_path

pytestmark = pytest.mark.django_db

NEW_USER = {"username": "mallory", "password1": "Xq-93-long!", "password2": "Xq-93-long!"}


@pytest.fixture
def admin_staff(user_factory):
    """Staff allowed to add and change users in the admin (the probe's victim)."""
    return user_factory(
        "staffer", is_staff=True, perms=("auth.add_user", "auth.change_user", "auth.view_user")
    )


def test_a_staff_token_cannot_use_the_admin_forms(admin_staff, token_for):
    client = Client(enforce_csrf_checks=True)
    bearer = {"Authorization": f"Bearer {token_for(admin_staff)}"}
    response = client.post("/admin/auth/user/add/", NEW_USER, headers=bearer)
    assert response.status_code == 403
    assert response.json()["error"] == "token_not_accepted"
    assert not get_user_model().objects.filter(username="mallory").exists()
    # The same staff user in a browser session, with the form's CSRF token, may.
    client.force_login(admin_staff)
    client.cookies["csrftoken"] = "b" * 32
    response = client.post("/admin/auth/user/add/", NEW_USER, headers={"X-CSRFToken": "b" * 32})
    assert response.status_code == 302
    assert get_user_model().objects.filter(username="mallory").exists()


@pytest.mark.parametrize("path", ["/", "/admin/", "/accounts/login/", "/accounts/password_change/"])
def test_a_token_never_authenticates_a_session_page(path, user_factory, token_for):
    root = user_factory("root", is_staff=True, is_superuser=True)
    response = Client().get(path, headers={"Authorization": f"Bearer {token_for(root)}"})
    assert response.status_code == 403
    assert response.json()["error"] == "token_not_accepted"


def test_admin_form_without_csrf_token_keeps_djangos_html_page(admin_staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_staff)
    response = client.post("/admin/auth/user/add/", NEW_USER)
    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")
    assert not get_user_model().objects.filter(username="mallory").exists()


def test_api_write_without_credentials_is_401_json_not_the_csrf_page():
    response = Client(enforce_csrf_checks=True).post(
        "/api/rovers/curiosity/telemetry", "{}", content_type="application/json"
    )
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Bearer"


def test_api_write_from_a_session_without_csrf_token_is_403_json(user_factory):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user_factory(perms=("rover.change_alarm",)))
    response = client.post("/api/alarms/1/acknowledge")
    assert response.status_code == 403
    assert response.json()["error"] == "csrf_failed"


@pytest.mark.parametrize(
    ("path", "api"),
    [
        ("/api/teams", True),
        ("/api/rovers/x/uploads/1", True),
        ("/stream/rover-image", True),
        ("/rovers/curiosity/telemetry/stream", True),
        ("/metrics", True),
        ("/", False),
        ("/admin/", False),
        ("/admin/api/", False),
        ("/accounts/login/", False),
        ("/rovers/curiosity/telemetry/stream/x", False),
        ("/metrics/x", False),
        ("/apix", False),
    ],
)
def test_token_paths_are_exactly_the_api(path, api):
    assert token_path(path) is api


@pytest.mark.django_db(transaction=True)
async def test_the_same_rules_hold_under_asgi(user_factory, token_for, close_thread_connections):
    """The middleware's async path (uvicorn, daphne) decides like its sync one."""
    from asgiref.sync import sync_to_async
    from django.test import AsyncClient

    root = await sync_to_async(user_factory)("root", is_staff=True, is_superuser=True)
    bearer = {"Authorization": f"Bearer {await sync_to_async(token_for)(root)}"}
    client = AsyncClient(enforce_csrf_checks=True)
    refused = await client.post("/admin/auth/user/add/", NEW_USER, headers=bearer)
    assert refused.status_code == 403 and refused.json()["error"] == "token_not_accepted"
    assert (await client.get("/api/teams", headers=bearer)).status_code == 200
    anonymous = await client.post("/api/alarms/1/acknowledge")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "not_authenticated"
    bad = await client.get("/api/teams", headers={"Authorization": "Bearer mc_nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_token"
    assert not await get_user_model().objects.filter(username="mallory").aexists()
