"""A PostgreSQL that hangs: 503 within the query deadline, the worker serves on, recovery.

The server is frozen, not stopped: its own cluster (testing.postgres_cluster)
gets SIGSTOP, postmaster and backends, so its connections stay open and the
kernel ACKs whatever clients send; nothing fails on the client's side. Only the
query deadline (mission_control.database_deadline) ends such a wait. The
machine's shared PostgreSQL is never touched.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import httpx
import psycopg
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed

from mission_control import database_deadline
from rover.tests.factories import frame
from testing import postgres_cluster
from testing.servers import ROOT, ServerProcess
from tests.test_postgres_outage import _environment, answer_200_again, seeded_server

pytestmark = [pytest.mark.slow]

DEADLINE = 2.0
# The deadline plus room for a machine whose two cores are shared.
LATENCY_BOUND = DEADLINE + 3.0
# What a request may take before the test calls it hung (without the deadline: forever).
GIVE_UP = LATENCY_BOUND + 10.0
HEALTHZ_BOUND = 1.0

GETS = ("/api/rovers", "/api/rovers/curiosity/telemetry?limit=1", "/api/teams")
TELEMETRY = "/api/rovers/curiosity/telemetry"
STREAM = "/rovers/curiosity/telemetry/stream"
# The batch posted while the server hangs: stored whole or not at all.
CUT_SEQS = range(10, 15)


async def _close_code_within(socket, seconds: float) -> tuple[int | None, float]:
    """Return the code the socket closes with (None: still open after `seconds`), and when."""
    started = time.monotonic()
    code = None
    try:
        async with asyncio.timeout(seconds):
            while True:
                await socket.recv()
    except ConnectionClosed as closed:
        code = closed.rcvd.code if closed.rcvd else None
    except TimeoutError:
        pass
    return code, time.monotonic() - started


def _cluster() -> postgres_cluster.PostgresCluster:
    if not postgres_cluster.available():
        if os.environ.get("CI") == "true":
            pytest.fail("initdb/pg_ctl are not installed (CI=true)")
        pytest.skip("initdb/pg_ctl are not installed")
    return postgres_cluster.PostgresCluster()


@pytest.fixture
def deadline():
    """Arm the query deadline in this process for the test; put back what was armed."""
    before = database_deadline.armed()
    database_deadline.arm(DEADLINE)
    yield DEADLINE
    database_deadline.arm(before or 0)


@pytest.mark.one_pass("first", why="it always uses a PostgreSQL cluster of its own")
def test_a_transaction_cut_off_by_the_deadline_is_stored_whole_or_not_at_all(deadline):
    cluster = _cluster()
    try:
        cluster.init()

        def connect() -> psycopg.Connection:
            return database_deadline.DeadlineConnection.connect(cluster.url, autocommit=True)

        with connect() as setup:
            setup.execute("CREATE TABLE cut (n int PRIMARY KEY, batch text NOT NULL)")
        outcomes = {}
        for batch, last in (("mid", "INSERT INTO cut VALUES (3, 'mid')"), ("commit", "COMMIT")):
            conn = connect()
            conn.execute("BEGIN")
            conn.execute("INSERT INTO cut VALUES (1, %s), (2, %s)", [batch, batch])
            if batch == "commit":
                conn.execute("INSERT INTO cut VALUES (3, 'commit')")
            cluster.freeze()
            started = time.monotonic()
            with pytest.raises(database_deadline.QueryDeadlineExceeded):
                conn.execute(last)
            took = time.monotonic() - started
            cluster.thaw()
            assert DEADLINE <= took < LATENCY_BOUND, took
            assert conn.closed
            with connect() as check:
                # Once thawed, the cut connection's backend reads what was sent, then the
                # connection's end, and exits: wait for that before reading what it stored.
                others = (
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()"
                )
                for _ in range(200):
                    if check.execute(others).fetchone() == (0,):
                        break
                    time.sleep(0.05)
                else:
                    pytest.fail("the cut connection's backend did not exit")
                stored = [
                    n for (n,) in check.execute("SELECT n FROM cut WHERE batch = %s", [batch])
                ]
            outcomes[batch] = sorted(stored)
        print(f"stored after the cut: {outcomes}")
        # Never part of a transaction: the one cut mid-way is rolled back; the COMMIT that
        # reached the server's socket before the cut is carried out once it answers again
        # (so a 503 does not prove that nothing was stored: clients retry idempotently).
        assert outcomes["mid"] == []
        assert outcomes["commit"] == [1, 2, 3]
    finally:
        cluster.destroy()


# A server process's own connection without the pool, built by the settings from its
# environment: connected, it waits for a line, then queries (the test has frozen the
# server meanwhile), then connects anew; it prints what each step raised and took.
NO_POOL_ROUND_TRIPS = """
import sys, time, django
django.setup()
from django.db import connection
from mission_control.database_deadline import arm
arm(float(sys.argv[1]))
connection.ensure_connection()
print(connection.settings_dict["OPTIONS"].get("pool"), flush=True)
sys.stdin.readline()
for step in (lambda: connection.cursor().execute("SELECT 1"), connection.ensure_connection):
    started = time.monotonic()
    try:
        step()
        outcome = "answered"
    except Exception as error:
        outcome = type(error).__name__
    print(outcome, round(time.monotonic() - started, 2), flush=True)
    connection.close()
"""


@pytest.mark.one_pass("first", why="it always uses a PostgreSQL cluster of its own")
def test_without_the_pool_a_round_trip_and_a_connect_give_up_within_the_deadline():
    cluster = _cluster()
    process: subprocess.Popen[str] | None = None
    try:
        cluster.init()
        env = dict(
            os.environ,
            DJANGO_SETTINGS_MODULE="mission_control.settings.test",
            MC_SERVER_PROCESS="1",
            DATABASE_URL=cluster.url,
            DATABASE_POOL_MAX="0",
            DATABASE_CONNECT_TIMEOUT=str(int(DEADLINE)),
        )
        process = subprocess.Popen(
            [sys.executable, "-c", NO_POOL_ROUND_TRIPS, str(DEADLINE)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout.readline().strip() == "None"  # connected, no pool
        cluster.freeze()
        try:
            out, _ = process.communicate("go\n", timeout=GIVE_UP)
        except subprocess.TimeoutExpired:
            process.kill()
            printed = process.communicate()[0].splitlines()
            pytest.fail(f"without the pool, a step still hung after {GIVE_UP} s; before: {printed}")
        steps = [line.split() for line in out.splitlines()]
        print(f"on the frozen server, without the pool: query, connect: {steps}")
        assert [outcome for outcome, _ in steps] == ["OperationalError"] * 2, steps
        assert all(DEADLINE - 0.1 <= float(took) < LATENCY_BOUND for _, took in steps), steps
    finally:
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        cluster.destroy()


async def _get_within(client: httpx.AsyncClient, method: str, path: str, **kwargs):
    """Return (status or None if it gave up, seconds taken, response)."""
    started = time.monotonic()
    try:
        response = await client.request(method, path, timeout=GIVE_UP, **kwargs)
    except httpx.TimeoutException:
        return None, time.monotonic() - started, None
    return response.status_code, time.monotonic() - started, response


@pytest.mark.one_pass("first", why="it always uses a PostgreSQL cluster of its own")
# With the pool (the default) and without: then every request connects anew, and a
# frozen server hangs the connect as well as the queries of an open connection.
@pytest.mark.parametrize("pool_max", ["20", "0"], ids=["pool", "no-pool"])
def test_a_hung_postgres_answers_503_within_the_deadline_while_the_worker_serves_on(pool_max):
    cluster = _cluster()
    media = tempfile.mkdtemp(prefix="mc-media-pg-hang-")
    server: ServerProcess | None = None
    try:
        cluster.init()
        env = _environment(cluster, media)
        env.update(
            DATABASE_QUERY_DEADLINE_SECONDS=str(DEADLINE),
            DATABASE_POOL_TIMEOUT=str(DEADLINE),
            DATABASE_POOL_MAX=pool_max,
            DATABASE_CONNECT_TIMEOUT=str(int(DEADLINE)),
            SSE_HEARTBEAT_SECONDS="0.5",
        )
        token, server = seeded_server(env, log_name=f"pg-hang-{pool_max}-{cluster.port}")

        async def scenario() -> None:
            headers = {"Authorization": f"Bearer {token}"}
            async with (
                httpx.AsyncClient(base_url=server.url, headers=headers, timeout=30) as http,
                httpx.AsyncClient(base_url=server.url, timeout=30) as plain,
            ):
                for path in GETS:
                    assert (await http.get(path)).status_code == 200, path
                assert (await http.post(TELEMETRY, json=frame(1))).status_code == 201

                # A live SSE client, connected before the hang: its heartbeats must go on.
                stream_lines: list[tuple[float, str]] = []
                first_frame = asyncio.Event()

                async def follow() -> None:
                    async with http.stream("GET", STREAM, timeout=None) as response:
                        assert response.status_code == 200
                        async for line in response.aiter_lines():
                            stream_lines.append((time.monotonic(), line))
                            if line.startswith("event: telemetry"):
                                first_frame.set()

                follower = asyncio.create_task(follow())
                await asyncio.wait_for(first_frame.wait(), 10)
                socket = await ws_connect(
                    f"ws://127.0.0.1:{server.port}/ws/comms/ops/?token={token}",
                    origin="http://127.0.0.1",
                )
                assert json.loads(await socket.recv())["type"] == "history"
                assert json.loads(await socket.recv())["type"] == "presence"

                cluster.freeze()
                frozen_at = time.monotonic()

                healthz: list[float] = []
                stuck = asyncio.Event()

                async def probe_healthz() -> None:
                    while not stuck.is_set():
                        started = time.monotonic()
                        response = await plain.get("/healthz", timeout=GIVE_UP)
                        assert response.status_code == 200
                        healthz.append(time.monotonic() - started)
                        await asyncio.sleep(0.2)

                prober = asyncio.create_task(probe_healthz())
                batch = [frame(seq) for seq in CUT_SEQS]
                # An open socket whose message cannot be stored closes 1013 (try again later).
                await socket.send(json.dumps({"type": "message", "body": "hi", "client_id": "a"}))
                *answers, (closed_with, socket_took) = await asyncio.gather(
                    *(_get_within(http, "GET", path) for path in GETS * 2),
                    _get_within(http, "POST", TELEMETRY, json=batch),
                    _close_code_within(socket, GIVE_UP),
                )
                stuck.set()
                await prober
                ready = await plain.get("/readyz", timeout=GIVE_UP)
                beats_while_frozen = [
                    line for at, line in stream_lines if at > frozen_at and line == ": heartbeat"
                ]
                cluster.thaw()

                report = [
                    (path, status, round(took, 2))
                    for path, (status, took, _) in zip(
                        (*GETS * 2, f"POST {TELEMETRY}"), answers, strict=True
                    )
                ]
                print(f"DATABASE_POOL_MAX={pool_max}, while frozen: {report}")
                print(
                    f"/healthz answered {len(healthz)} times meanwhile, slowest "
                    f"{max(healthz):.3f} s; {len(beats_while_frozen)} SSE heartbeats; "
                    f"the socket closed {closed_with} after {socket_took:.2f} s"
                )
                assert all(status == 503 for _, status, _ in report), report
                assert all(took < LATENCY_BOUND for _, _, took in report), report
                for _, _, response in answers:
                    assert response.headers["content-type"] == "application/json"
                    assert response.json()["error"] == "database_unavailable"
                    assert int(response.headers["Retry-After"]) > 0
                assert len(healthz) >= 3, healthz
                assert max(healthz) < HEALTHZ_BOUND, healthz
                assert beats_while_frozen, stream_lines[-5:]
                assert ready.status_code == 503, ready.text
                assert closed_with == 1013, closed_with
                assert socket_took < LATENCY_BOUND, socket_took

                # Back by itself: the cut connections were discarded, not handed out again.
                thawed = time.monotonic()
                give_up = thawed + 15
                await answer_200_again(http, GETS, give_up)
                back = time.monotonic() - thawed
                # The cut batch was stored whole or not at all; its retry stores the rest.
                listed = await http.get(f"{TELEMETRY}?limit=100")
                seqs = [f["seq"] for f in listed.json()["frames"] if f["seq"] in CUT_SEQS]
                assert seqs in ([], list(CUT_SEQS)), seqs
                retried = await http.post(TELEMETRY, json=batch)
                assert retried.status_code in (200, 201), retried.text
                assert retried.json()["stored"] + len(retried.json()["duplicates"]) == len(batch)
                listed = await http.get(f"{TELEMETRY}?limit=100")
                assert [f["seq"] for f in listed.json()["frames"]] == [1, *CUT_SEQS]
                await answer_200_again(plain, ["/readyz"], give_up)
                print(
                    f"every path 200 again {back:.2f} s after the thaw; the cut batch had "
                    f"{'all' if seqs else 'none'} of its frames stored"
                )
                assert not follower.done(), follower
                follower.cancel()

        asyncio.run(scenario())
    finally:
        cluster.thaw()
        if server is not None:
            server.stop()
        cluster.destroy()
        shutil.rmtree(media, ignore_errors=True)
