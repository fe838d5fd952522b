"""PostgreSQL outages: 503 JSON with Retry-After, sockets close 1013, recovery by itself.

The test runs its own PostgreSQL cluster (testing.postgres_cluster), a uvicorn
worker on it with DATABASE_POOL_TIMEOUT=2, stops the cluster mid-test and starts
it again. The machine's shared PostgreSQL is never touched. Recovery covers what
holds database connections outside a request's own thread too: the SSE stream's
reads (a shared thread pool) and /readyz.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rover.tests.factories import frame
from testing import postgres_cluster
from testing.servers import ROOT, ServerProcess, run_log_path

pytestmark = [pytest.mark.slow]

POOL_TIMEOUT = 2.0
# The pool's timeout plus room for a machine whose two cores are shared.
LATENCY_BOUND = POOL_TIMEOUT + 3.0

SEED = """
import django; django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from accounts.services import token_create
from accounts.tests.factories import UserFactory
from comms.models import Membership
from comms.tests.factories import MembershipFactory, TeamFactory
from django.contrib.auth.models import Permission
from rover.models.rovers import Rover
team = TeamFactory(slug="ops", name="Ops")
user = UserFactory(username="alice")
MembershipFactory(team=team, user=user, role=Membership.Role.LEAD)
user.user_permissions.add(Permission.objects.get(codename="add_telemetryframe"))
Rover.objects.get_or_create(slug="curiosity", defaults={"name": "Curiosity"})
print(token_create(user=user)[1])
"""

API_PATHS = (
    "/api/rovers",
    "/api/rovers/curiosity/telemetry?limit=1",
    "/api/rovers/curiosity/alarms",
    "/api/rovers/curiosity/images",
    "/api/teams",
    "/api/teams/ops/messages",
)
TELEMETRY = "/api/rovers/curiosity/telemetry"
STREAM = "/rovers/curiosity/telemetry/stream"
# Streams opened at once: enough to occupy every thread of the pool the streams'
# reads share (asyncio's default executor, min(32, cores + 4) threads).
STREAMS = min(32, (os.cpu_count() or 1) + 4)


def _environment(cluster: postgres_cluster.PostgresCluster, media: str) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("REDIS_URL", None)
    env.update(
        DJANGO_SETTINGS_MODULE="mission_control.settings.test",
        MC_SERVER_PROCESS="1",
        DATABASE_URL=cluster.url,
        DATABASE_POOL_TIMEOUT=str(POOL_TIMEOUT),
        MEDIA_ROOT=media,
        ALLOWED_HOSTS="127.0.0.1,localhost",
        PYTHONUNBUFFERED="1",
    )
    return env


def seeded_server(env: dict[str, str], *, log_name: str) -> tuple[str, ServerProcess]:
    """Seed the cluster of `env` (SEED), start a uvicorn worker on it; return (token, server)."""
    seeded = subprocess.run(
        [sys.executable, "-c", SEED],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    token = seeded.stdout.strip().splitlines()[-1]
    log_path = run_log_path(log_name)  # removed once the run passes (root conftest)
    return token, ServerProcess(server="uvicorn", env=env, log_path=log_path).start()


async def answer_200_again(client: httpx.AsyncClient, paths, give_up: float) -> None:
    """GET each of `paths` until it answers 200; fail with its status at `give_up` (monotonic)."""
    for path in paths:
        while (status := (await client.get(path)).status_code) != 200:
            assert time.monotonic() < give_up, (path, status)
            await asyncio.sleep(0.2)


async def _first_streamed_seq(http: httpx.AsyncClient) -> int | None:
    """Open the rover's SSE stream; return the seq of the frame it starts with.

    None when the stream answers an error or ends before its first frame (its
    read of the newest frame failed).
    """

    async def read() -> int | None:
        async with http.stream("GET", STREAM) as response:
            if response.status_code != 200:
                return None
            event = None
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    event = line.removeprefix("event: ")
                elif line.startswith("data: ") and event == "telemetry":
                    return json.loads(line.removeprefix("data: "))["seq"]
        return None

    try:
        return await asyncio.wait_for(read(), LATENCY_BOUND + 5)
    except httpx.RemoteProtocolError:
        return None  # the server ended the chunked body mid-way: the stream failed


async def _close_code(socket) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), LATENCY_BOUND + 5)
    return closed.value.rcvd.code


# It always uses a PostgreSQL cluster of its own, whatever the pass: once is enough.
@pytest.mark.one_pass("first", why="it always uses a PostgreSQL cluster of its own")
def test_postgres_outage_answers_503_closes_sockets_1013_and_recovers():
    if not postgres_cluster.available():
        if os.environ.get("CI") == "true":
            pytest.fail("initdb/pg_ctl are not installed (CI=true)")
        pytest.skip("initdb/pg_ctl are not installed")
    cluster = postgres_cluster.PostgresCluster()
    media = tempfile.mkdtemp(prefix="mc-media-pg-")
    server: ServerProcess | None = None
    try:
        cluster.init()
        env = _environment(cluster, media)
        token, server = seeded_server(env, log_name=f"pg-outage-{cluster.port}")
        headers = {"Authorization": f"Bearer {token}"}
        ws_url = f"ws://127.0.0.1:{server.port}/ws/comms/ops/?token={token}"

        async def scenario() -> None:
            async with (
                httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http,
                # No token: a token opens the API only, and the health checks need none.
                httpx.AsyncClient(base_url=server.url, timeout=30) as plain,
            ):
                for path in API_PATHS:
                    assert (await http.get(path)).status_code == 200, path
                assert (await plain.get("/readyz")).status_code == 200
                assert (await http.post(TELEMETRY, json=frame(1))).status_code == 201
                # The streams' reads run on a shared thread pool: each of its threads
                # has now used a connection, which must not outlive the outage.
                streamed = await asyncio.gather(
                    *(_first_streamed_seq(http) for _ in range(STREAMS))
                )
                assert streamed == [1] * STREAMS
                socket = await connect(ws_url, origin="http://127.0.0.1")
                assert json.loads(await socket.recv())["type"] == "history"
                assert json.loads(await socket.recv())["type"] == "presence"

                cluster.stop()

                # An open socket whose message cannot be stored closes 1013.
                await socket.send(json.dumps({"type": "message", "body": "hi", "client_id": "a"}))
                assert await _close_code(socket) == 1013
                # A new socket (its token cannot be checked) closes 1013 too.
                started = time.monotonic()
                fresh = await connect(ws_url, origin="http://127.0.0.1", open_timeout=30)
                assert await _close_code(fresh) == 1013
                assert time.monotonic() - started < LATENCY_BOUND
                # Every API path: 503 JSON with Retry-After, within the pool's timeout.
                latencies = []
                for path in (*API_PATHS, "/api/rovers/curiosity/telemetry"):
                    method = "POST" if path.endswith("/telemetry") else "GET"
                    started = time.monotonic()
                    body = {"battery": 50} if method == "POST" else None
                    response = await http.request(method, path, json=body)
                    took = time.monotonic() - started
                    assert response.status_code == 503, (path, response.status_code)
                    assert response.headers["content-type"] == "application/json"
                    assert response.json()["error"] == "database_unavailable"
                    assert int(response.headers["Retry-After"]) > 0
                    assert took < LATENCY_BOUND, (path, took)
                    latencies.append(took)
                print(f"503 in {min(latencies):.2f}-{max(latencies):.2f} s")
                # At once, too: requests in flight together must not queue behind each other.
                started = time.monotonic()
                answers = await asyncio.gather(*(http.get(path) for path in API_PATHS * 2))
                took = time.monotonic() - started
                print(f"{len(answers)} requests at once: all answered in {took:.2f} s")
                assert {a.status_code for a in answers} == {503}
                assert took < LATENCY_BOUND, took
                # Not ready, naming the database; alive all the same.
                ready = await plain.get("/readyz")
                assert ready.status_code == 503, ready.text
                assert ready.json()["reason"].startswith("database: ")
                assert (await plain.get("/healthz")).status_code == 200

                cluster.start()

                # Recovery by itself: the pool replaces its dead connections.
                restarted = time.monotonic()
                deadline = restarted + 15
                await answer_200_again(http, API_PATHS, deadline)
                print(
                    f"every API path answered 200 {time.monotonic() - restarted:.2f} s after start"
                )
                while (status := (await http.post(TELEMETRY, json=frame(2))).status_code) != 201:
                    assert time.monotonic() < deadline, ("POST telemetry", status)
                    await asyncio.sleep(0.2)
                # The first read on a pooled connection that died with the server may
                # fail (the stream ends, the client reconnects); later ones must not, on
                # whichever thread of the pool they run.
                while (
                    streamed := await asyncio.gather(
                        *(_first_streamed_seq(http) for _ in range(STREAMS))
                    )
                ) != [2] * STREAMS:
                    assert time.monotonic() < deadline, ("SSE streams", streamed)
                    await asyncio.sleep(0.2)
                await answer_200_again(plain, ["/readyz"], deadline)
                back = time.monotonic() - restarted
                print(f"readyz and the SSE stream back {back:.2f} s after start")
                socket = await connect(ws_url, origin="http://127.0.0.1")
                assert json.loads(await socket.recv())["type"] == "history"
                await socket.close()

        asyncio.run(scenario())
    finally:
        if server is not None:
            server.stop()
        cluster.destroy()
        import shutil

        shutil.rmtree(media, ignore_errors=True)
