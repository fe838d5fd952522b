"""Password logins are rate-limited per client address (django-axes)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

LIMIT = 3
LOGINS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture
def operator(user_factory):
    return user_factory("operator", is_staff=True)


def _login(client: Client, path: str, password: str, **extra):
    return client.post(path, {"username": "operator", "password": password}, **extra)


@pytest.mark.django_db
@pytest.mark.parametrize("path", LOGINS)
def test_failed_logins_lock_the_address_out_even_with_the_right_password(path, limit, operator):
    client = Client()
    for _ in range(LIMIT - 1):
        assert _login(client, path, "wrong").status_code == 200  # the form again, with an error
    locked = _login(client, path, "wrong")
    assert locked.status_code == 429
    assert locked["Retry-After"] == str(15 * 60)
    assert b"Too many login attempts" in locked.content
    right = _login(client, path, "pw-123456")
    assert right.status_code == 429
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_the_lock_covers_every_login_form_and_not_other_addresses(limit, operator):
    client = Client()
    for _ in range(LIMIT):
        _login(client, "/accounts/login/", "wrong")
    assert _login(client, "/admin/login/", "pw-123456").status_code == 429
    elsewhere = _login(Client(), "/accounts/login/", "pw-123456", REMOTE_ADDR="127.0.0.2")
    assert elsewhere.status_code == 302


@pytest.mark.django_db
def test_the_lock_ends_after_the_cool_off(limit, operator):
    from axes.models import AccessAttempt

    client = Client()
    for _ in range(LIMIT):
        _login(client, "/accounts/login/", "wrong")
    assert _login(client, "/accounts/login/", "pw-123456").status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _login(client, "/accounts/login/", "pw-123456").status_code == 302


@pytest.mark.django_db
def test_a_successful_login_does_not_clear_earlier_failures(limit, operator):
    """Else one account of one's own would reset the count between guesses at others'."""
    for _ in range(LIMIT - 1):
        _login(Client(), "/accounts/login/", "typo")
    assert _login(Client(), "/accounts/login/", "pw-123456").status_code == 302
    assert _login(Client(), "/accounts/login/", "typo").status_code == 429


@pytest.mark.django_db
def test_a_few_typos_do_not_lock_anyone_out(limit, operator):
    client = Client()
    for _ in range(LIMIT - 1):
        _login(client, "/accounts/login/", "typo")
    assert _login(client, "/accounts/login/", "pw-123456").status_code == 302


def _post_login(client, url: str, forwarded_for: str, password: str) -> int:
    """Log in through the real form (its CSRF token included); return the status."""
    headers = {"X-Forwarded-For": forwarded_for}
    page = client.get(f"{url}/accounts/login/", headers=headers)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    form = {"username": "operator", "password": password, "csrfmiddlewaretoken": csrf}
    return client.post(f"{url}/accounts/login/", data=form, headers=headers).status_code


@pytest.mark.slow
def test_behind_a_local_proxy_uvicorn_counts_each_client_address(server_process, user_factory):
    """uvicorn trusts X-Forwarded-For from 127.0.0.1 by default: one client's lock is its own."""
    import httpx

    user_factory("operator")
    proc = server_process(server="uvicorn", env={"LOGIN_FAILURE_LIMIT": "2"})
    with httpx.Client(timeout=10) as client:
        assert _post_login(client, proc.url, "198.51.100.7", "wrong") == 200
        assert _post_login(client, proc.url, "198.51.100.7", "wrong") == 429
        assert _post_login(client, proc.url, "198.51.100.7", "pw-123456") == 429
    with httpx.Client(timeout=10) as client:
        assert _post_login(client, proc.url, "198.51.100.8", "pw-123456") == 302


@pytest.mark.django_db
def test_an_admin_sees_the_attempts_and_a_command_lifts_the_lock(limit, operator, user_factory):
    from django.core.management import call_command

    client = Client()
    for _ in range(LIMIT):
        _login(client, "/accounts/login/", "wrong")
    assert _login(client, "/accounts/login/", "pw-123456").status_code == 429
    root = Client()
    root.force_login(user_factory("root", is_staff=True, is_superuser=True))
    listing = root.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and b"127.0.0.1" in listing.content
    call_command("axes_reset_ip", "127.0.0.1")
    assert _login(client, "/accounts/login/", "pw-123456").status_code == 302
