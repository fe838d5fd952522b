"""bench/reload.py's gunicorn stack: served through the same nginx, replaced as the bench says."""

from __future__ import annotations

import threading
import time

import httpx
import pytest

from bench.reload_gunicorn import GunicornStack, ttin_ttou

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]


def test_gunicorn_ttin_ttou_replaces_every_worker_never_running_fewer(
    stack_services, stack_static_root
):
    postgres_url, redis_url = stack_services
    stack = GunicornStack(
        postgres_url=postgres_url, redis_url=redis_url, workers=2, STATIC_ROOT=stack_static_root
    )
    stack.start()
    try:
        old = stack.worker_pids()
        master = stack.supervisor().pid
        assert len(old) == 2
        # Through deploy/nginx.conf, from one of gunicorn's workers.
        assert httpx.get(f"{stack.url}/healthz", timeout=10).json()["worker"] in old

        counts: list[int] = []
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                counts.append(len(stack.worker_pids()))
                time.sleep(0.01)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            ttin_ttou(stack)
        finally:
            done.set()
            sampler.join()
        new = stack.worker_pids()
        assert len(new) == 2
        assert not new & old
        assert stack.supervisor().pid == master
        # One at a time: a new worker joins before an old one leaves.
        assert min(counts) == 2
        assert max(counts) == 3
    finally:
        stack.stop()
