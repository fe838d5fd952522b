"""/readyz with a Redis that hangs: connections open, nothing answered (SIGSTOP).

A closed port (mission_control/tests/test_health.py) refuses at once; a Redis
host that stops answering (a network partition, a stalled server) does not, and
is the fault that breaks the promise "503 when Redis does not answer within 2 s".
A probe that hangs instead is read by an orchestrator as its own timeout, and
every hung probe holds a Redis connection of the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal

import pytest

from rover.tests.clients import asgi_request
from streams.tests.redis_server import RedisServer

pytestmark = [pytest.mark.redis]


@pytest.mark.django_db(transaction=True)
async def test_readyz_answers_503_when_redis_hangs(settings):
    server = RedisServer().start()
    try:
        settings.REDIS_HOSTS = [server.url]
        assert (await asgi_request("/readyz"))[0] == 200
        os.kill(server.proc.pid, signal.SIGSTOP)
        try:
            # Far above the 2 s bound: a probe that hangs fails here, not forever.
            status, _headers, body = await asyncio.wait_for(asgi_request("/readyz"), 30)
        finally:
            os.kill(server.proc.pid, signal.SIGCONT)
        assert status == 503
        answer = json.loads(body)
        assert answer["checks"] == {"database": "ok", "redis": "no answer within 2s"}
        assert answer["reason"] == "redis: no answer within 2s"
        assert (await asgi_request("/readyz"))[0] == 200  # answering again: ready again
    finally:
        server.stop()
