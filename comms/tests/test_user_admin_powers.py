"""A user administrator who is not a superuser cannot hand out powers or take over a superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from accounts.tests.admin_clients import logged_in
from comms.models import Membership, Team

pytestmark = pytest.mark.django_db

PERMS = ("auth.change_user", "auth.view_user")


@pytest.fixture
def keeper(user_factory):
    return user_factory("keeper", is_staff=True, perms=PERMS)


def change_form(user, **extra) -> dict:
    return {
        "username": user.username,
        "date_joined_0": "2026-11-25",
        "date_joined_1": "10:00:00",
        "is_active": "on",
        "is_staff": "on",
        "memberships-TOTAL_FORMS": "0",
        "memberships-INITIAL_FORMS": "0",
        "memberships-MIN_NUM_FORMS": "0",
        "memberships-MAX_NUM_FORMS": "1000",
        **extra,
    }


def test_a_user_administrator_cannot_make_themselves_superuser_or_grant_permissions(keeper):
    everything = list(Permission.objects.values_list("pk", flat=True))
    response = logged_in(keeper).post(
        f"/admin/auth/user/{keeper.pk}/change/",
        change_form(keeper, is_superuser="on", user_permissions=everything),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    keeper.refresh_from_db()
    assert not keeper.is_superuser
    assert keeper.user_permissions.count() == len(PERMS)


def test_a_user_administrator_still_manages_team_memberships(user_factory):
    keeper = user_factory(
        "keeper", is_staff=True, perms=(*PERMS, "comms.add_membership", "comms.view_membership")
    )
    member = user_factory("member")
    team = Team.objects.create(slug="sci", name="Science")
    form = change_form(member)
    form.pop("is_staff")
    form.update(
        {
            "memberships-TOTAL_FORMS": "1",
            "memberships-0-team": team.pk,
            "memberships-0-role": "member",
        }
    )
    response = logged_in(keeper).post(f"/admin/auth/user/{member.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Membership.objects.filter(user=member, team=team).exists()


def test_a_user_administrator_cannot_change_a_superusers_account_or_password(keeper, root):
    client = logged_in(keeper)
    password_page = f"/admin/auth/user/{root.pk}/password/"
    assert client.get(password_page).status_code == 403
    client.post(password_page, {"password1": "taken-over-1", "password2": "taken-over-1"})
    client.post(
        f"/admin/auth/user/{root.pk}/change/",
        change_form(root, username="renamed", is_superuser="on"),
    )
    root.refresh_from_db()
    assert root.username == "root" and root.check_password("pw-123456")
    # A superuser still can.
    assert logged_in(root).get(password_page).status_code == 200
