"""bench/servers.py's candidates start from their command lines and serve the product."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest

from bench.common import SERVER_CONFIGS, ServerTree, bench_server

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("config", sorted(SERVER_CONFIGS))
def test_each_compared_server_serves_healthz_from_its_worker(config, tmp_path: Path):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "mission_control.settings.base"}
    env.pop("DATABASE_URL", None)
    env.pop("REDIS_URL", None)
    server = bench_server(config, env=env, log_path=tmp_path / "server.log")
    with server:
        response = httpx.get(f"{server.url}/healthz", timeout=10)
        assert response.status_code == 200, server.log()
        worker = response.json()["worker"]
        # Granian and gunicorn answer from a child worker; the tree is what benchmarks measure.
        assert worker in {proc.pid for proc in ServerTree(server.pid).processes()}
        assert ServerTree(server.pid).memory_info().rss > 0
