"""/healthz and /readyz in process: what they touch, and what makes readyz answer 503."""

from __future__ import annotations

import asyncio
import json
import os
import threading

import pytest

from rover.tests.clients import asgi_request
from testing.servers import free_port


async def test_healthz_answers_the_worker_pid_without_touching_the_database():
    # No django_db mark: pytest-django makes any database access in any thread raise,
    # which would turn the answer into a 500.
    status, headers, body = await asgi_request("/healthz")
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"status": "ok", "worker": os.getpid()}


@pytest.mark.django_db(transaction=True)
async def test_readyz_answers_200_when_the_database_answers(settings):
    settings.REDIS_HOSTS = []
    status, _headers, body = await asgi_request("/readyz")
    assert status == 200
    assert json.loads(body) == {"status": "ok", "checks": {"database": "ok"}}


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_readyz_checks_redis_when_configured(settings, redis_url):
    settings.REDIS_HOSTS = [redis_url]
    status, _headers, body = await asgi_request("/readyz")
    assert status == 200
    assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}


@pytest.mark.django_db(transaction=True)
async def test_readyz_answers_503_with_the_reason_when_redis_does_not_answer(settings):
    settings.REDIS_HOSTS = [f"redis://127.0.0.1:{free_port()}/0"]
    status, headers, body = await asgi_request("/readyz")
    assert status == 503
    assert headers["content-type"] == "application/json"
    answer = json.loads(body)
    assert answer["status"] == "unavailable"
    assert answer["checks"]["database"] == "ok"
    assert answer["reason"].startswith("redis: ConnectionError")
    assert answer["reason"] == f"redis: {answer['checks']['redis']}"


async def test_health_endpoints_refuse_other_methods():
    status, _headers, _body = await asgi_request("/healthz", method="OPTIONS")
    assert status == 405


@pytest.mark.django_db(transaction=True)
async def test_health_endpoints_are_never_rate_limited_or_behind_a_login(settings):
    settings.REDIS_HOSTS = []
    for _ in range(200):
        assert (await asgi_request("/healthz"))[0] == 200
    for _ in range(20):
        assert (await asgi_request("/readyz"))[0] == 200


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_readyz_pings_every_shard_and_names_the_one_that_does_not_answer(settings):
    from streams.tests.redis_server import RedisServer

    shards = [RedisServer().start(), RedisServer().start()]
    try:
        settings.REDIS_HOSTS = [shard.url for shard in shards]
        status, _headers, body = await asgi_request("/readyz")
        assert status == 200
        assert json.loads(body)["checks"] == {"database": "ok", "redis": "ok"}
        shards[1].shutdown()
        status, _headers, body = await asgi_request("/readyz")
        assert status == 503
        reason = json.loads(body)["reason"]
        assert reason.startswith(f"redis: {shards[1].url}: ConnectionError")
        assert shards[0].url not in reason
    finally:
        for shard in shards:
            shard.stop()


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
# Its own redis-servers and Sentinel whatever the pass: once is enough.
@pytest.mark.one_pass("services", why="own redis-servers and a Sentinel")
async def test_readyz_asks_the_sentinel_for_the_master_and_follows_a_failover(settings):
    from mission_control.redis_topology import hosts_from_environ
    from streams.tests.redis_server import SentinelWatchedRedis

    watched = SentinelWatchedRedis().start()
    try:
        settings.REDIS_HOSTS = hosts_from_environ(watched.environ)
        assert (await asgi_request("/readyz"))[0] == 200
        watched.failover()
        watched.master.shutdown()
        assert (await asgi_request("/readyz"))[0] == 200  # the new master answers
        watched.sentinel.shutdown()
        status, _headers, body = await asgi_request("/readyz")
        assert status == 503
        assert json.loads(body)["reason"].startswith("redis: ")  # the master is not found
    finally:
        watched.stop()


@pytest.mark.django_db(transaction=True)
async def test_readyz_keeps_one_probe_in_flight_when_the_database_hangs(settings, monkeypatch):
    """A hung database (no answer, connection open) has no client-side timeout.

    Each /readyz used to start a new thread that stayed stuck in its query; probes
    every few seconds filled asyncio's default executor, which other sync work
    shares. The stand-in query blocks like a hung server's (a stopped cluster is
    tests/test_postgres_outage.py's; a hung one cannot be told apart from outside
    the worker by anything but its threads).
    """
    from mission_control import health

    settings.REDIS_HOSTS = []
    answering = threading.Event()
    started = []

    def hung_query() -> None:
        started.append(threading.get_ident())
        answering.wait(30)

    monkeypatch.setattr(health, "_query_database", hung_query)
    try:
        answers = await asyncio.gather(*(asgi_request("/readyz") for _ in range(3)))
        answers.append(await asgi_request("/readyz"))
        for status, _headers, body in answers:
            assert status == 503
            assert json.loads(body)["checks"]["database"] == "no answer within 2s"
        assert len(started) == 1, f"{len(started)} queries stuck for {len(answers)} probes"
    finally:
        answering.set()
    await asyncio.sleep(0.1)  # the stuck query returns
    assert (await asgi_request("/readyz"))[0] == 200
    assert len(started) == 2  # a fresh probe once the last one finished
