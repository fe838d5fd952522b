"""Health endpoints for nginx, load balancers and orchestrators (no login, no rate limit).

`/healthz` says the worker process is alive and serving: it touches nothing
else, so a database outage never makes a supervisor restart healthy workers.
`/readyz` says the worker can do its job: PostgreSQL (or the embedded SQLite)
and, when Redis is configured, every Redis shard answer within READY_TIMEOUT_SECONDS
(behind Sentinel: the master the Sentinels name).
"""

from __future__ import annotations

import asyncio
import functools
import os

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_safe

from streams.per_loop import PerLoop

from .redis_topology import async_client, describe

READY_TIMEOUT_SECONDS = 2.0


@require_safe
async def healthz(request: HttpRequest) -> JsonResponse:
    """Answer 200 with this worker's pid; no database or Redis is touched."""
    return JsonResponse({"status": "ok", "worker": os.getpid()})


def _query_database() -> None:
    connection = connections["default"]
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    finally:
        # Hand the connection back (to the pool under PostgreSQL) from this thread.
        connection.close()


# The probe still running, per event loop (one per worker; tests run many loops).
_database_probe: PerLoop[dict[str, asyncio.Future]] = PerLoop(dict)


async def _check_database() -> None:
    """Wait for a database probe; at most one per worker is ever in flight.

    Not thread-sensitive: a slow database must not queue behind other requests'
    sync work. A database that hangs (no answer, connection open) keeps the
    probe's thread in its query until the query deadline closes its connection
    (DATABASE_QUERY_DEADLINE_SECONDS, far past READY_TIMEOUT_SECONDS; none when
    it is 0); a new thread per `/readyz` would pile up one stuck thread per probe
    and soon fill the default executor that other sync work shares. Later probes
    wait on the same query.
    """
    probes = _database_probe.get()
    probe = probes.get("database")
    if probe is None or probe.done():
        probe = probes["database"] = asyncio.ensure_future(
            sync_to_async(_query_database, thread_sensitive=False)()
        )
        # Its error is read by whoever still waits; one that finishes unwatched is not news.
        probe.add_done_callback(lambda done: done.cancelled() or done.exception())
    # Shielded: the caller's 2 s timeout must not cancel the probe others wait on.
    await asyncio.shield(probe)


async def _ping(host) -> None:
    client = async_client(
        host,
        max_connections=1,
        timeout=READY_TIMEOUT_SECONDS,
        socket_connect_timeout=READY_TIMEOUT_SECONDS,
        socket_timeout=READY_TIMEOUT_SECONDS,
    )
    try:
        await client.ping()
    finally:
        await client.aclose()


async def _outcome(check) -> str:
    try:
        async with asyncio.timeout(READY_TIMEOUT_SECONDS):
            await check()
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_SECONDS:g}s"
    except Exception as exc:
        detail = " ".join(str(exc).split()) or type(exc).__name__
        return f"{type(exc).__name__}: {detail}"[:300]
    return "ok"


async def _redis_outcome() -> str:
    """PING every shard at once; "ok", or which shards did not answer and why."""
    hosts = settings.REDIS_HOSTS
    outcomes = await asyncio.gather(*(_outcome(functools.partial(_ping, h)) for h in hosts))
    if len(hosts) == 1:
        return outcomes[0]
    failed = [f"{describe(h)}: {o}" for h, o in zip(hosts, outcomes, strict=True) if o != "ok"]
    return "; ".join(failed) or "ok"


@require_safe
async def readyz(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database and Redis answer, else 503 naming what failed and why."""
    names = ["database"]
    checks = [_outcome(_check_database)]
    if settings.REDIS_HOSTS:
        names.append("redis")
        checks.append(_redis_outcome())
    results = dict(zip(names, await asyncio.gather(*checks), strict=True))
    failed = {name: result for name, result in results.items() if result != "ok"}
    if failed:
        reason = "; ".join(f"{name}: {result}" for name, result in failed.items())
        return JsonResponse(
            {"status": "unavailable", "reason": reason, "checks": results}, status=503
        )
    return JsonResponse({"status": "ok", "checks": results})
