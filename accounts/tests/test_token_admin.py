"""API tokens in the admin: a token administrator never gets another user's powers."""

from __future__ import annotations

import pytest

from accounts.models import ApiToken
from accounts.tests.admin_clients import logged_in

pytestmark = pytest.mark.django_db

PERMS = ("accounts.add_apitoken", "accounts.change_apitoken", "accounts.view_apitoken")


@pytest.fixture
def token_admin(user_factory):
    """Staff trusted with tokens, not a superuser."""
    return user_factory("keeper", is_staff=True, perms=PERMS)


def test_a_token_administrator_cannot_mint_a_token_for_a_superuser(token_admin, root):
    response = logged_in(token_admin).post(
        "/admin/accounts/apitoken/add/", {"user": root.pk, "name": "mine now"}
    )
    assert response.status_code == 200  # the form again, with the error
    assert not ApiToken.objects.filter(user=root).exists()
    own = logged_in(token_admin).post(
        "/admin/accounts/apitoken/add/", {"user": token_admin.pk, "name": "mine"}
    )
    assert own.status_code == 302
    assert ApiToken.objects.get().user == token_admin


def test_nobody_can_hand_an_existing_token_to_another_user(token_admin, root, token_for):
    """Else a token whose secret one knows could be moved to the superuser."""
    token_for(token_admin)
    token = ApiToken.objects.get(user=token_admin)
    for user in (token_admin, root):
        logged_in(user).post(
            f"/admin/accounts/apitoken/{token.pk}/change/", {"user": root.pk, "name": "moved"}
        )
        token.refresh_from_db()
        assert token.user == token_admin


def test_a_token_administrator_sees_and_revokes_only_their_own_tokens(token_admin, root, token_for):
    token_for(root)
    token_for(token_admin)
    client = logged_in(token_admin)
    listing = client.get("/admin/accounts/apitoken/")
    assert listing.context["cl"].result_count == 1
    theirs = ApiToken.objects.get(user=root)
    assert client.get(f"/admin/accounts/apitoken/{theirs.pk}/change/").status_code == 302
    client.post(
        "/admin/accounts/apitoken/",
        {"action": "revoke", "_selected_action": [theirs.pk]},
    )
    theirs.refresh_from_db()
    assert theirs.revoked_at is None
    assert logged_in(root).get("/admin/accounts/apitoken/").context["cl"].result_count == 2


def test_view_only_staff_cannot_revoke_tokens(user_factory, token_for):
    """A view permission never writes: the revoke action needs the change permission."""
    viewer = user_factory("watcher", is_staff=True, perms=("accounts.view_apitoken",))
    token_for(viewer)
    token = ApiToken.objects.get(user=viewer)
    client = logged_in(viewer)
    listing = client.get("/admin/accounts/apitoken/")
    assert listing.status_code == 200
    # No action is offered at all (delete needs its permission too).
    assert listing.context["action_form"] is None
    client.post("/admin/accounts/apitoken/", {"action": "revoke", "_selected_action": [token.pk]})
    token.refresh_from_db()
    assert token.revoked_at is None
