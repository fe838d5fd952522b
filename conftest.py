"""Shared fixtures: real services, API tokens, and real server processes.

Tests that need Redis or PostgreSQL use them for real. When a service is down
they skip with its name, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from urllib.parse import urlparse

import pytest
from asgiref.sync import SyncToAsync
from django.conf import settings

from testing.servers import ServerName, ServerProcess, free_port, run_log_path


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
    _skip_other_pass(items)
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


PASSES = {False: "first", True: "services"}


def _skip_other_pass(items) -> None:
    """Skip the tests marked `one_pass` for the other pass of `make test`.

    A test whose result cannot depend on the pass (it starts its own
    redis-servers or PostgreSQL cluster, or never touches the test database and
    layer) proved nothing more the second time and cost CI minutes:
    `@pytest.mark.one_pass("services", why=...)` runs it under
    MC_TEST_SERVICES=1 only (PostgreSQL as in production), `"first"` in the
    SQLite pass only. MC_TEST_BOTH_PASSES=1 runs them in either pass (to run
    one such file alone without setting up the services pass).
    """
    if os.environ.get("MC_TEST_BOTH_PASSES") == "1":
        return
    this = PASSES[bool(settings.TEST_SERVICES)]
    for item in items:
        marker = item.get_closest_marker("one_pass")
        if marker is None:
            continue
        (which,) = marker.args
        if which not in PASSES.values() or not marker.kwargs.get("why"):
            raise pytest.UsageError(f"{item.nodeid}: one_pass needs 'first' or 'services' and why=")
        if which != this:
            reason = f"runs in the {which} pass only: {marker.kwargs['why']}"
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_sessionfinish(session, exitstatus):
    """Remove this run's throwaway media folder and server logs (kept when tests failed)."""
    _delete_redis_keys_of_this_run()
    if exitstatus != 0:
        return
    media = Path(settings.MEDIA_ROOT)
    if media.name.startswith("mc-media-") and media.parent == Path(tempfile.gettempdir()):
        shutil.rmtree(media, ignore_errors=True)
    logs = run_log_path("*")
    for log in logs.parent.glob(logs.name):
        log.unlink(missing_ok=True)


def _delete_redis_keys_of_this_run() -> None:
    """Delete this run's keys from the shared Redis (the hub's counters never expire).

    Never a flush: only names under this run's prefix. The letter after the
    prefix keeps run 12 from matching run 123's keys.
    """
    if not _reachable(settings.TEST_REDIS_URL):
        return
    import redis

    client = redis.Redis.from_url(settings.TEST_REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{settings.CHANNEL_LAYER_PREFIX}[a-z]*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    except redis.RedisError:
        pass  # leftovers are harmless; a failing cleanup must not fail the run
    finally:
        client.close()


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


@pytest.fixture(autouse=True)
def _close_thread_connections():
    """Close the database connections opened on asgiref's shared thread during the test.

    Async views, consumers and `sync_to_async` run their ORM calls on that one
    thread; its connection outlives the test and would keep PostgreSQL from
    dropping the test database.
    """
    from asgiref.sync import SyncToAsync
    from django.db import connections

    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)


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

    from mission_control.settings.base import redis_channel_layers

    settings.CHANNEL_LAYERS = redis_channel_layers([redis_url], settings.CHANNEL_LAYER_PREFIX)
    channel_layers.backends.clear()
    yield channel_layers["default"]
    channel_layers.backends.clear()


@pytest.fixture
def user_factory(db):
    """Return `UserFactory` as a function: `user_factory("lead", perms=("rover.change_alarm",))`."""
    from accounts.tests.factories import UserFactory

    def make(username: str | None = None, *, perms: tuple[str, ...] = (), **fields):
        if username is not None:
            fields["username"] = username
        return UserFactory(perms=perms, **fields)

    return make


@pytest.fixture
def thread_hops(monkeypatch) -> list[int]:
    """Count the `sync_to_async` calls made while the test runs."""
    calls = [0]
    original = SyncToAsync.__call__

    async def counting(self, *args, **kwargs):
        calls[0] += 1
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return calls


@pytest.fixture
def root(django_user_model):
    """A superuser, `root` (password `pw-123456`)."""
    return django_user_model.objects.create_superuser("root", "root@example.org", "pw-123456")


@pytest.fixture
def token_for(db):
    """Return a function that makes a raw API token for a user."""
    from accounts.services import token_create

    def make(user) -> str:
        return token_create(user=user)[1]

    return make


def _database_url() -> str:
    db = settings.DATABASES["default"]
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or "postgres"
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}@{host}:{port}/{db['NAME']}"


def _server_env(*, redis_url: str, extra: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a server process serving this run's test database and media."""
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
    if redis_url:
        env["REDIS_URL"] = redis_url
    env.update(extra)
    return env


@pytest.fixture
def server_process(transactional_db) -> Iterator[Callable[..., ServerProcess]]:
    """Start real server processes on the test database: `server_process(redis_url=...)`.

    Keywords: `server` ("daphne" or "uvicorn"), `redis_url` (empty: the in-memory
    layer), `env` (more environment). Tests using it see committed data only, hence
    `transactional_db`.
    """
    started: list[ServerProcess] = []

    def start(
        *, server: ServerName = "daphne", redis_url: str = "", env: Mapping[str, str] = {}
    ) -> ServerProcess:
        port = free_port()
        process = ServerProcess(
            server=server,
            port=port,
            env=_server_env(redis_url=redis_url, extra=env),
            log_path=run_log_path(str(port)),
        )
        started.append(process)
        return process.start()

    yield start
    for process in started:
        process.stop()
