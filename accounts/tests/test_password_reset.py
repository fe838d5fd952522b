"""Password reset by email: off (and saying so) without a mail server, never an account oracle."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client

URL = "/accounts/password_reset/"
KNOWN = "ada@example.org"
UNKNOWN = "nobody@example.org"

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def no_recent_mails():
    """Forget which accounts were mailed (a user id may come back in the next test)."""
    from django.core.cache import cache

    cache.clear()


@pytest.fixture
def ada(user_factory):
    return user_factory("ada", email=KNOWN)


def _production_mail_settings(**env) -> dict:
    check = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.PASSWORD_RESET_BY_EMAIL, s.EMAIL_BACKEND, s.EMAIL_HOST, "
        "s.EMAIL_TIMEOUT]))"
    )
    full_env = {
        k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG", "EMAIL_URL")
    }
    full_env.update(
        DJANGO_SETTINGS_MODULE="mission_control.settings.production",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="example.org",
        **env,
    )
    result = subprocess.run(
        [sys.executable, "-c", check], env=full_env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return dict(zip(["on", "backend", "host", "timeout"], json.loads(result.stdout), strict=True))


def test_production_without_email_url_turns_password_reset_off():
    loaded = _production_mail_settings()
    assert loaded["on"] is False
    # Nothing is sent anywhere (not to an SMTP server on localhost, not to the logs).
    assert loaded["backend"] == "django.core.mail.backends.dummy.EmailBackend"


def test_production_with_email_url_sends_through_it_with_a_timeout():
    loaded = _production_mail_settings(EMAIL_URL="smtp+tls://robot:pw@mail.example.org:587")
    assert loaded["on"] is True
    assert loaded["backend"] == "django.core.mail.backends.smtp.EmailBackend"
    assert loaded["host"] == "mail.example.org"
    # Without one, a mail server that never answers would hold the request forever.
    assert loaded["timeout"] == 10


def _ask(email: str):
    return Client().post(URL, {"email": email})


def test_reset_off_page_says_so_and_answers_every_address_alike(ada, settings, caplog):
    settings.PASSWORD_RESET_BY_EMAIL = False
    page = Client().get(URL)
    assert page.status_code == 200
    assert b"not available on this server" in page.content
    assert b'name="email"' not in page.content
    with caplog.at_level(logging.WARNING):
        known, unknown = _ask(KNOWN), _ask(UNKNOWN)
    assert (known.status_code, known.content) == (unknown.status_code, unknown.content)
    assert known.status_code == 200
    assert b"not available on this server" in known.content
    assert mail.outbox == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_reset_mails_a_link_and_answers_an_unknown_address_the_same(ada, settings):
    from accounts.mail import mail_drain

    settings.PASSWORD_RESET_BY_EMAIL = True
    known, unknown = _ask(KNOWN), _ask(UNKNOWN)
    assert known.status_code == unknown.status_code == 302
    assert known["Location"] == unknown["Location"] == "/accounts/password_reset/done/"
    mail_drain()
    assert [m.to for m in mail.outbox] == [[KNOWN]]
    assert "/accounts/reset/" in mail.outbox[0].body


class BlockingBackend(BaseEmailBackend):
    """A mail server that answers only once the test releases it."""

    released = threading.Event()
    sent: list = []

    def send_messages(self, messages):
        self.released.wait(10)
        self.sent.extend(messages)
        return len(messages)


def test_the_answer_does_not_wait_for_the_mail_server(ada, settings):
    """A slow mail server delayed only known addresses' answers: an account oracle."""
    from accounts.mail import mail_drain

    settings.PASSWORD_RESET_BY_EMAIL = True
    settings.EMAIL_BACKEND = f"{__name__}.BlockingBackend"
    BlockingBackend.released.clear()
    BlockingBackend.sent.clear()
    try:
        response = _ask(KNOWN)
        assert response.status_code == 302
        assert BlockingBackend.sent == []
    finally:
        BlockingBackend.released.set()
    mail_drain()
    assert [m.to for m in BlockingBackend.sent] == [[KNOWN]]


def test_a_mail_server_failure_is_logged_once_without_the_address(ada, settings, caplog):
    from accounts.mail import mail_drain

    settings.PASSWORD_RESET_BY_EMAIL = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", 9  # discard: refused
    with caplog.at_level(logging.ERROR):
        assert _ask(KNOWN).status_code == 302
        mail_drain()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert KNOWN not in errors[0].getMessage()


def test_repeated_requests_for_one_account_mail_it_once_per_interval(ada, user_factory, settings):
    """Else anyone could flood a user's mailbox from the reset form."""
    from accounts.mail import mail_drain

    settings.PASSWORD_RESET_BY_EMAIL = True
    user_factory("bob", email="bob@example.org")
    answers = {_ask(KNOWN).status_code for _ in range(3)} | {_ask("bob@example.org").status_code}
    assert answers == {302}
    mail_drain()
    assert sorted(m.to[0] for m in mail.outbox) == [KNOWN, "bob@example.org"]
