from __future__ import annotations

import pytest
from django.core.management import call_command
from django.http import JsonResponse
from django.test import RequestFactory

from accounts.decorators import api_login_required, api_permission_required
from accounts.middleware import BearerTokenMiddleware
from accounts.models import ApiToken
from accounts.services import token_revoke, token_user

pytestmark = pytest.mark.django_db


def test_create_token_prints_token_once_and_stores_only_hash(user_factory, capsys):
    user = user_factory("alice")
    call_command("create_token", "alice")
    raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get(user=user)
    assert raw.startswith("mc_")
    assert raw not in (token.key_hash, token.prefix)
    assert raw.startswith(token.prefix)
    assert token_user(raw) == user


def test_create_token_for_unknown_user_fails():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_token", "nobody")


def test_revoked_token_is_refused(user_factory, token_for):
    user = user_factory()
    raw = token_for(user)
    token_revoke(token=ApiToken.objects.get(user=user))
    assert token_user(raw) is None


def _whoami(request):
    return JsonResponse({"user": request.user.username})


def test_bearer_header_authenticates_and_bad_token_is_401(user_factory, token_for):
    user = user_factory("bob")
    raw = token_for(user)
    middleware = BearerTokenMiddleware(api_login_required(_whoami))
    factory = RequestFactory()

    request = factory.get("/api/teams", headers={"Authorization": f"Bearer {raw}"})
    from django.contrib.auth.models import AnonymousUser

    request.user = AnonymousUser()
    assert middleware(request).content == b'{"user": "bob"}'

    bad = factory.get("/api/teams", headers={"Authorization": "Bearer mc_nope"})
    bad.user = AnonymousUser()
    response = middleware(bad)
    assert response.status_code == 401
    assert b"invalid_token" in response.content

    anonymous = factory.get("/api/teams")
    anonymous.user = AnonymousUser()
    assert middleware(anonymous).status_code == 401


def test_permission_required_answers_403_json(user_factory):
    view = api_permission_required("rover.add_telemetryframe")(_whoami)
    request = RequestFactory().get("/")
    request.user = user_factory()
    response = view(request)
    assert response.status_code == 403
    assert b"rover.add_telemetryframe" in response.content
    request.user = user_factory(perms=("rover.add_telemetryframe",))
    assert view(request).status_code == 200


def test_token_of_an_inactive_user_is_refused(user_factory, token_for):
    user = user_factory()
    raw = token_for(user)
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert token_user(raw) is None


def test_last_use_is_written_when_older_than_a_minute_and_not_more_often(user_factory, token_for):
    from datetime import timedelta

    from django.utils import timezone

    user = user_factory()
    raw = token_for(user)
    assert token_user(raw) == user
    first = ApiToken.objects.get(user=user).last_used_at
    assert first is not None
    assert token_user(raw) == user
    assert ApiToken.objects.get(user=user).last_used_at == first
    ApiToken.objects.filter(user=user).update(last_used_at=first - timedelta(minutes=2))
    assert token_user(raw) == user
    assert ApiToken.objects.get(user=user).last_used_at > timezone.now() - timedelta(minutes=1)


def test_the_user_a_token_returns_is_a_plain_user(user_factory, token_for):
    user = user_factory()
    found = token_user(token_for(user))
    assert (found.pk, found.username, found.is_active) == (user.pk, user.username, True)
    assert not hasattr(found, "api_token_id")
    assert not hasattr(found, "api_token_stale")
