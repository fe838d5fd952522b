from __future__ import annotations

import os
import shutil
import socket
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest
from django.conf import settings

from testing.stack import ProductionStack


def _require(name: str, url: str) -> None:
    parsed = urlparse(url)
    try:
        socket.create_connection((parsed.hostname, parsed.port), timeout=1).close()
    except OSError:
        message = f"{name} is not reachable at {url}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message} (CI=true: the service must run)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def stack_static_root() -> str:
    """One STATIC_ROOT for this run's stacks: collectstatic then only copies what changed."""
    path = Path(tempfile.gettempdir()) / f"mc-stack-static-{os.environ['MC_TEST_RUN_ID']}"
    yield str(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_services() -> tuple[str, str]:
    """Return the PostgreSQL and Redis URLs the stack uses (skip, or fail on CI, when down)."""
    _require("PostgreSQL", settings.TEST_POSTGRES_URL)
    _require("Redis", settings.TEST_REDIS_URL)
    if not (shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK)):
        message = "nginx is not installed (apt-get install nginx-light)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return settings.TEST_POSTGRES_URL, settings.TEST_REDIS_URL


@pytest.fixture(scope="module")
def production_stacks(stack_services, stack_static_root):
    """Start stacks through scripts/serve.py: `production_stacks(workers=2, **env)`.

    Module-scoped so one stack can serve several tests (each start costs a
    migrate on a fresh database and the workers' boot); all stop at the end.
    """
    started: list[ProductionStack] = []

    def start(**kwargs) -> ProductionStack:
        postgres_url, redis_url = stack_services
        kwargs.setdefault("STATIC_ROOT", stack_static_root)
        stack = ProductionStack(postgres_url=postgres_url, redis_url=redis_url, **kwargs)
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.stop()
