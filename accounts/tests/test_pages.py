from __future__ import annotations

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_dashboard_redirects_anonymous_to_login(client):
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_login_page_and_admin_are_served(client):
    assert client.get("/accounts/login/").status_code == 200
    assert client.get("/admin/login/").status_code == 200


def test_seed_demo_is_idempotent_and_operator_can_log_in(client):
    call_command("seed_demo")
    call_command("seed_demo")
    from comms.models import Team
    from rover.models import Rover

    assert Rover.objects.filter(slug="curiosity").count() == 1
    assert sorted(Team.objects.values_list("slug", flat=True)) == [
        "engineering",
        "navigation",
        "science",
    ]
    assert sorted(
        Team.objects.filter(members__username="operator").values_list("slug", flat=True)
    ) == ["engineering", "navigation", "science"]
    assert client.login(username="operator", password="mission-control")


def test_seed_demo_makes_an_administrator_who_runs_the_admin(client, settings):
    settings.DEBUG = True  # as in `make run`
    call_command("seed_demo", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert "administrator 'admin' (password 'mission-control')" in out.getvalue()
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and admin.is_superuser
    assert client.login(username="admin", password="mission-control")
    for page in ("/admin/rover/rover/", "/admin/comms/team/", "/admin/auth/user/"):
        assert client.get(page).status_code == 200, page
    assert client.get("/").status_code == 200


def test_seed_demo_makes_no_known_password_administrator_with_debug_off(settings):
    settings.DEBUG = False  # production settings refuse DEBUG on
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    assert not get_user_model().objects.filter(username="admin").exists()
    assert not get_user_model().objects.filter(is_superuser=True).exists()
    assert "createsuperuser" in out.getvalue()
