from __future__ import annotations

import pytest
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
    assert client.get("/").status_code == 200
