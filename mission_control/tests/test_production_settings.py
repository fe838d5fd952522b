"""Production settings: `check --deploy` is clean, and health probes pass the HTTPS redirect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # each test starts Django in a fresh process
    # That process has production settings of its own, never the test database or layer.
    pytest.mark.one_pass("first", why="a fresh process with production settings"),
]

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = """
import django
django.setup()
from django.test import Client
client = Client()
print(client.get("/healthz").status_code, client.get("/readyz").status_code >= 200,
      client.get("/").status_code, client.get("/").headers.get("Location"))
"""


def production_env(**extra: str) -> dict[str, str]:
    # Not the test run's own switches (pytest-playwright sets DJANGO_ALLOW_ASYNC_UNSAFE).
    left_out = {"MC_SERVER_PROCESS", "DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env = {k: v for k, v in os.environ.items() if k not in left_out}
    env.update(
        DJANGO_SETTINGS_MODULE="mission_control.settings.production",
        SECRET_KEY="kq3V8xQmZ2r7Lw9pT4yN6bC1dF5hJ0sG8aE3uR7iO2lK9vX4zM6nB1cP5qW8tY0e",
        ALLOWED_HOSTS="mission.example.org,testserver",
        DATABASE_URL="postgres://mission@127.0.0.1:5432/mission",
        REDIS_URL="redis://127.0.0.1:6379/0",
    )
    for name in ("SECURE_SSL_REDIRECT", "SECURE_COOKIES", "SECURE_HSTS_SECONDS"):
        env.pop(name, None)
    env.update(extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_deploy_is_clean_under_production_settings():
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], production_env())
    assert done.returncode == 0, done.stderr
    assert "System check identified no issues (0 silenced)." in done.stdout


def test_check_deploy_warns_when_https_is_turned_off():
    """The check is not blind: the plain-HTTP switches a local `make serve` uses are flagged."""
    env = production_env(SECURE_SSL_REDIRECT="false", SECURE_COOKIES="false")
    done = run(["manage.py", "check", "--deploy", "--fail-level", "WARNING"], env)
    assert done.returncode != 0
    for check in ("security.W008", "security.W012", "security.W016"):
        assert check in done.stderr


def test_health_probes_are_exempt_from_the_https_redirect():
    done = run(["-c", PROBE], production_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["200", "True", "301", "https://testserver/"]
