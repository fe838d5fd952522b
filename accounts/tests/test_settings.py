from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = "import django; django.setup(); from django.conf import settings; print(settings.DEBUG)"


def _load_production(**env) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "DEBUG")}
    full_env.update(DJANGO_SETTINGS_MODULE="mission_control.settings.production", **env)
    return subprocess.run(
        [sys.executable, "-c", CHECK], env=full_env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("env", "error"),
    [
        ({"ALLOWED_HOSTS": "example.org"}, "SECRET_KEY must be set"),
        ({"SECRET_KEY": "x" * 50, "DEBUG": "1", "ALLOWED_HOSTS": "a"}, "DEBUG must be off"),
    ],
)
def test_production_settings_refuse_insecure_start(env, error):
    result = _load_production(**env)
    assert result.returncode != 0
    assert error in result.stderr


def test_production_settings_start_when_configured():
    result = _load_production(SECRET_KEY="x" * 50, ALLOWED_HOSTS="example.org")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
