"""simulate_rover keeps one API token in the user's data directory, not a new one per start."""

from __future__ import annotations

import json
import stat

import httpx
import pytest
from django.core.management import call_command

from accounts.models import ApiToken
from accounts.services import token_revoke, token_user
from rover.management.commands.simulate_rover import TOKENS_FILE, simulator_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def data_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    return tmp_path / "mission-control"


def test_the_stored_token_is_reused_at_every_start(data_home):
    first = simulator_token()
    assert token_user(first).has_perm("rover.add_telemetryframe")
    assert simulator_token() == first
    assert simulator_token() == first
    assert ApiToken.objects.filter(user__username="simulator").count() == 1
    path = data_home / TOKENS_FILE
    # Only its owner may read a stored secret.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert list(json.loads(path.read_text()).values()) == [first]


def test_a_revoked_stored_token_is_replaced_and_the_new_one_stored(data_home):
    first = simulator_token()
    token_revoke(token=ApiToken.objects.get(user__username="simulator"))
    second = simulator_token()
    assert second != first
    assert token_user(second) is not None
    assert simulator_token() == second
    assert ApiToken.objects.filter(user__username="simulator", revoked_at=None).count() == 1


def test_an_unknown_or_corrupt_stored_token_is_replaced(data_home):
    data_home.mkdir(parents=True)
    (data_home / TOKENS_FILE).write_text("{not json")
    token = simulator_token()
    assert token_user(token) is not None
    assert simulator_token() == token


@pytest.mark.parametrize("where", ["command line", "environment"])
def test_a_given_token_is_used_and_nothing_is_created_or_stored(data_home, settings, where):
    """--token, then SIMULATOR_TOKEN, win over the stored token (port 9: nobody listens)."""
    args = ["--url", "http://127.0.0.1:9", "--duration", "0.1"]
    if where == "command line":
        args += ["--token", "mc_given"]
    else:
        settings.SIMULATOR_TOKEN = "mc_given"
    with pytest.raises(httpx.ConnectError):
        call_command("simulate_rover", *args)
    assert not ApiToken.objects.exists()
    assert not data_home.exists()
