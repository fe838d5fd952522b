"""Login lockouts through the real ASGI application, as uvicorn and daphne serve it.

Under ASGI, django-axes builds the lockout answer on its async path
(`AxesMiddleware.__acall__`), which in 8.3.1 calls the lockout callable with the
credentials where the sync path passes the original response
(jazzband/django-axes#1494, open). These tests go through
`mission_control.asgi.application` with the form's CSRF token, as a browser does.
"""

from __future__ import annotations

import re
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

LIMIT = 3
RIGHT = "pw-123456"
LOGINS = ["/accounts/login/", "/admin/login/"]
CLIENT = "198.51.100.7"


@pytest.fixture
def limit(settings):
    settings.AXES_FAILURE_LIMIT = LIMIT
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)


@pytest.fixture
def operator(user_factory, close_thread_connections):
    # Staff, so that the admin's form also accepts the right password.
    return user_factory("operator", is_staff=True)


def _client(address: str) -> httpx.AsyncClient:
    """Return a client of the real ASGI application that connects from `address`."""
    from mission_control.asgi import application

    transport = httpx.ASGITransport(app=application, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://localhost")


async def _login(path: str, password: str, address: str = CLIENT) -> httpx.Response:
    """Open the login page and post its form (CSRF cookie and token included)."""
    async with _client(address) as client:
        page = await client.get(path)
        assert page.status_code == 200, page.text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        form = {"username": "operator", "password": password, "csrfmiddlewaretoken": csrf}
        return await client.post(path, data=form)


def _assert_locked(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert response.headers["retry-after"] == str(15 * 60)
    assert response.headers["content-type"].startswith("text/html")
    assert "Too many login attempts" in response.text
    assert f"after {LIMIT} failed attempts" in response.text
    assert "Try again in 15 minutes" in response.text
    assert "sessionid" not in response.cookies  # not logged in


async def _age_attempts(minutes: int) -> None:
    """Move every recorded failure `minutes` into the past, as if that time had gone by."""
    from axes.models import AccessAttempt

    await sync_to_async(AccessAttempt.objects.update)(
        attempt_time=timezone.now() - timedelta(minutes=minutes)
    )


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("path", LOGINS)
async def test_asgi_lockout_answers_429_even_to_the_right_password_until_the_cool_off(
    path, limit, operator
):
    for _ in range(LIMIT - 1):
        assert (await _login(path, "wrong")).status_code == 200  # the form, with an error
    _assert_locked(await _login(path, "wrong"))
    _assert_locked(await _login(path, RIGHT))
    assert (await _login(path, RIGHT, address="198.51.100.8")).status_code == 302
    await _age_attempts(16)
    assert (await _login(path, RIGHT)).status_code == 302


@pytest.mark.django_db(transaction=True)
async def test_asgi_each_attempt_while_locked_restarts_the_cool_off(limit, operator):
    """Even the right password, tried while locked, counts as a failure and restarts the wait."""
    for _ in range(LIMIT):
        await _login("/accounts/login/", "wrong")
    await _age_attempts(10)
    _assert_locked(await _login("/accounts/login/", RIGHT))
    await _age_attempts(10)  # 20 minutes after the first lock, 10 after the last try
    _assert_locked(await _login("/accounts/login/", RIGHT))
    await _age_attempts(16)
    assert (await _login("/accounts/login/", RIGHT)).status_code == 302
