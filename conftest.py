"""Shared fixtures: real services, API tokens, and real server processes.

Tests that need Redis or PostgreSQL use them for real. When a service is down
they skip with its name, except under CI=true, where they fail.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

ROOT = Path(__file__).resolve().parent


def _reachable(url: str) -> bool:
    parsed = urlparse(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port), timeout=1):
            return True
    except OSError:
        return False


def _require(name: str, url: str) -> None:
    if _reachable(url):
        return
    message = f"{name} is not reachable at {url}"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: the service must run)")
    pytest.skip(message)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Run browser tests last; under MC_TEST_SERVICES=1 every test needs PostgreSQL and Redis.

    Playwright's sync API keeps an event loop running in the main thread for the
    rest of the session, which breaks any asyncio test scheduled after it
    (pytest-django reorders transactional tests, so order by marker here).
    """
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)
    if not settings.TEST_SERVICES:
        return
    for name, url in (
        ("PostgreSQL", settings.TEST_POSTGRES_URL),
        ("Redis", settings.TEST_REDIS_URL),
    ):
        if not _reachable(url):
            if os.environ.get("CI") == "true":
                pytest.exit(f"{name} is not reachable at {url} (CI=true)", returncode=1)
            for item in items:
                item.add_marker(pytest.mark.skip(reason=f"{name} is not reachable at {url}"))


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's throwaway media folder and server logs (kept when tests failed)."""
    if exitstatus != 0:
        return
    media = Path(settings.MEDIA_ROOT)
    if media.name.startswith("mc-media-") and media.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(media, ignore_errors=True)
    for log in Path(tempfile.gettempdir()).glob(f"mc-server-{os.environ['MC_TEST_RUN_ID']}-*.log"):
        log.unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def _fresh_channel_layers():
    """Give each test fresh channel-layer instances.

    channels-redis' core layer binds its locks to the first event loop that
    uses it, and each async test runs on a new loop.
    """
    from channels.layers import channel_layers

    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture
def redis_url() -> str:
    """Return the Redis URL for tests, skipping (or failing on CI) when it is down."""
    url = settings.TEST_REDIS_URL
    _require("Redis", url)
    return url


@pytest.fixture
def postgres_url() -> str:
    url = settings.TEST_POSTGRES_URL
    _require("PostgreSQL", url)
    return url


@pytest.fixture
def redis_channel_layer(settings, redis_url):
    """Switch this test's channel layer to channels-redis with the run's own prefix."""
    from channels.layers import channel_layers

    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {
                "hosts": [redis_url],
                "prefix": settings.CHANNEL_LAYER_PREFIX,
                "capacity": 10000,
                "expiry": 60,
            },
        }
    }
    channel_layers.backends.clear()
    yield channel_layers["default"]
    channel_layers.backends.clear()


@pytest.fixture
def user_factory(db):
    from django.contrib.auth import get_user_model

    User = get_user_model()
    counter = iter(range(1, 10**6))

    def make(username: str | None = None, *, perms: tuple[str, ...] = (), **fields):
        from django.contrib.auth.models import Permission

        user = User.objects.create_user(
            username=username or f"user{next(counter)}", password="pw-123456", **fields
        )
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
        return User.objects.get(pk=user.pk)

    return make


@pytest.fixture
def token_for(db):
    """Return a function that makes a raw API token for a user."""
    from accounts.services import token_create

    def make(user) -> str:
        return token_create(user=user)[1]

    return make


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


class ServerProcess:
    """A real ASGI server process serving the test database, restartable on its port."""

    def __init__(self, *, server: str = "daphne", redis_url: str = "", env: dict | None = None):
        self.server = server
        self.port = free_port()
        self.redis_url = redis_url
        self.extra_env = env or {}
        self.proc: subprocess.Popen | None = None
        run_id = os.environ["MC_TEST_RUN_ID"]
        self.log_path = Path(tempfile.gettempdir()) / f"mc-server-{run_id}-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        app = "mission_control.asgi:application"
        if self.server == "uvicorn":
            return [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--port",
                str(self.port),
                "--no-access-log",
            ]
        return [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port), app]

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            DJANGO_SETTINGS_MODULE="mission_control.settings.test",
            MC_SERVER_PROCESS="1",
            DATABASE_URL=_database_url(),
            MEDIA_ROOT=str(settings.MEDIA_ROOT),
            MC_TEST_RUN_ID=os.environ["MC_TEST_RUN_ID"],
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        env.pop("REDIS_URL", None)
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 20.0) -> ServerProcess:
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            self.command(), cwd=ROOT, env=self.env(), stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        raise RuntimeError(f"server did not listen within {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture
def server_process(transactional_db) -> Iterator:
    """Start real server processes on the test database: `server_process(redis_url=...)`.

    Tests using it see committed data only, hence `transactional_db`.
    """
    started: list[ServerProcess] = []

    def start(**kwargs) -> ServerProcess:
        server = ServerProcess(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
