"""Test settings: fast hashing, throwaway media, one namespace per test run.

The suite runs on SQLite + the in-memory layer by default. With
MC_TEST_SERVICES=1 (the second pass of `make test`) it runs on PostgreSQL and
channels-redis instead. Test databases and Redis keys carry the run's pid so
parallel runs on one machine never collide; server processes started by the
tests get the same names through the environment.
"""

from __future__ import annotations

import os
import secrets
import tempfile

from .base import *  # noqa: F403
from .base import CHANNEL_LAYERS, DATABASES, env, redis_channel_layers

RUN_ID = env.str("MC_TEST_RUN_ID", default=str(os.getpid()))
os.environ.setdefault("MC_TEST_RUN_ID", RUN_ID)
TEST_SERVICES = env.bool("MC_TEST_SERVICES", default=False)
TEST_POSTGRES_URL = env.str("TEST_POSTGRES_URL", default="postgres://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = env.str("TEST_REDIS_URL", default="redis://127.0.0.1:6379/0")

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Named here, made by the first file stored in it: every process that imports these
# settings (the servers tests start, benchmarks) used to leave an empty folder behind.
# Servers get the run's folder through the environment (root conftest.py), and the
# pytest session removes it at the end.
MEDIA_ROOT = env.str("MEDIA_ROOT", default="") or os.path.join(
    tempfile.gettempdir(), f"mc-media-{RUN_ID}-{secrets.token_hex(4)}"
)
CHANNEL_LAYER_PREFIX = f"mctest{RUN_ID}"

if TEST_SERVICES and "MC_SERVER_PROCESS" not in os.environ:
    DATABASES = {"default": env.db_url_config(TEST_POSTGRES_URL)}
    REDIS_HOSTS = [TEST_REDIS_URL]
    CHANNEL_LAYERS = redis_channel_layers(REDIS_HOSTS, CHANNEL_LAYER_PREFIX)

if "Redis" in CHANNEL_LAYERS["default"]["BACKEND"]:
    CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = CHANNEL_LAYER_PREFIX

if "MC_SERVER_PROCESS" not in os.environ:
    if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
        # A file, not :memory:, so server processes started by tests share it.
        DATABASES["default"]["TEST"] = {
            "NAME": os.path.join(tempfile.gettempdir(), f"mc-test-{RUN_ID}.sqlite3")
        }
    else:
        DATABASES["default"]["TEST"] = {"NAME": f"test_mc_{RUN_ID}"}

WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
