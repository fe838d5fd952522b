"""`make serve` for real: nginx, two uvicorn workers, PostgreSQL and Redis.

The stack is started by scripts/serve.py, exactly as `make serve` starts it, and
reloaded by `serve.py reload`, exactly as `make reload` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest
from PIL import Image

from rover.tests.factories import frame, jpeg_bytes
from testing.resuming_clients import RoomMember, SSEFollower
from testing.servers import free_port
from testing.stack import ROOT, SERVE, post_login, still_running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    # The stack always runs on PostgreSQL and Redis, whatever the pass: once is enough.
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]

STREAM = "/rovers/curiosity/telemetry/stream"


@pytest.fixture(scope="module")
def stack(production_stacks):
    return production_stacks(workers=2)


# --- refusing to start ------------------------------------------------------------


def _closed_port_url(scheme: str) -> str:
    return (
        f"{scheme}://127.0.0.1:{free_port()}/x"
        if scheme == "postgres"
        else (f"redis://127.0.0.1:{free_port()}/0")
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"DATABASE_URL": None}, "DATABASE_URL is not set"),
        ({"REDIS_URL": None}, "REDIS_URL is not set"),
        ({"SECRET_KEY": None}, "SECRET_KEY is not set"),
        ({"ALLOWED_HOSTS": None}, "ALLOWED_HOSTS is not set"),
        ({"DATABASE_URL": "sqlite:///db.sqlite3"}, "DATABASE_URL must be a PostgreSQL URL"),
        ({"DATABASE_URL": "closed"}, "PostgreSQL at DATABASE_URL does not answer"),
        ({"REDIS_URL": "closed"}, "Redis at REDIS_URL does not answer"),
        ({"REDIS_URL": "shard+closed"}, "Redis at REDIS_URL does not answer (redis://127.0.0.1:"),
        (
            {"REDIS_URL": None, "REDIS_SENTINELS": "closed", "REDIS_SENTINEL_MASTER": "m"},
            "Redis at REDIS_SENTINELS does not answer (master 'm' via Sentinel 127.0.0.1:",
        ),
        ({"REDIS_SENTINELS": "127.0.0.1:1", "REDIS_SENTINEL_MASTER": "m"}, "not both"),
        ({"PORT": "busy"}, "is in use: set PORT to a free port"),
    ],
)
def test_serve_refuses_without_reachable_postgres_and_redis(
    stack_services, tmp_path, change, message
):
    postgres_url, redis_url = stack_services
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env.update(
        DATABASE_URL=postgres_url,
        REDIS_URL=redis_url,
        SECRET_KEY="x" * 60,
        ALLOWED_HOSTS="127.0.0.1",
        RUN_DIR=str(tmp_path / "run"),
        PORT=str(free_port()),
    )
    taken = socket.socket()  # another program's, when the case is a busy port
    for name, value in change.items():
        if value is None:
            env.pop(name, None)
        elif value == "closed" and name == "REDIS_SENTINELS":
            env[name] = f"127.0.0.1:{free_port()}"
        elif value == "closed":
            env[name] = _closed_port_url("postgres" if name == "DATABASE_URL" else "redis")
        elif value == "shard+closed":
            env[name] = f"{redis_url},{_closed_port_url('redis')}"
        elif value == "busy":
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            env[name] = str(taken.getsockname()[1])
        else:
            env[name] = value
    with taken:
        done = subprocess.run(
            [sys.executable, str(SERVE)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert message in done.stderr
    # Refused before anything started: no migration ran, no nginx, no pid files.
    assert "migrate" not in done.stderr
    assert not (tmp_path / "run" / "serve.pid").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{env['PORT']}/healthz")


def test_a_second_serve_on_the_same_run_directory_refuses(stack):
    done = subprocess.run(
        [sys.executable, str(SERVE)],
        cwd=ROOT,
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "a stack already runs from" in done.stderr
    assert "migrate" not in done.stderr
    assert httpx.get(f"{stack.url}/healthz").status_code == 200


# --- health ---------------------------------------------------------------------


def test_healthz_and_readyz_answer_through_nginx_without_auth_or_rate_limit(stack):
    workers = stack.worker_pids()
    assert len(workers) == 2
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        for _ in range(40):
            health = client.get("/healthz")
            assert health.status_code == 200
            assert health.headers["server"] == "nginx"
            assert health.json()["status"] == "ok"
            assert health.json()["worker"] in workers
        ready = [client.get("/readyz") for _ in range(20)]
        assert {r.status_code for r in ready} == {200}
        assert ready[0].json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}

        # PostgreSQL refuses this database's connections: not ready, but still alive.
        stack.refuse_connections(True)
        try:
            answers = [client.get("/readyz") for _ in range(4)]
            assert {r.status_code for r in answers} == {503}
            body = answers[-1].json()
            assert body["status"] == "unavailable"
            assert body["reason"].startswith("database: ")
            assert body["checks"]["redis"] == "ok"
            assert client.get("/healthz").status_code == 200
        finally:
            stack.refuse_connections(False)
        deadline = time.monotonic() + 10
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "readyz did not recover"
            time.sleep(0.1)


def test_static_files_come_from_nginx_with_hashed_names_cached_forever(stack):
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        page = client.get("/accounts/login/")
        assert page.status_code == 200
        css = next(
            part.split('"')[0]
            for part in page.text.split('href="')[1:]
            if part.startswith("/static/") and ".css" in part.split('"')[0]
        )
        answer = client.get(css)
        assert answer.status_code == 200
        assert answer.headers["server"] == "nginx"
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"


# --- every event reaches clients on both workers --------------------------------


async def _spread(stack, open_one, limit: int = 16) -> list:
    """Open clients until each worker holds at least one of them.

    The kernel picks the worker that accepts each connection, and it often hands
    every one to the same worker (CI saw 16 of 16). After a few tries the workers
    that already have a new client are paused (SIGSTOP) while the next one opens,
    so only the others can accept it, then resumed at once.
    """
    before = stack.connections_per_worker()
    opened = []
    now = before
    for attempt in range(limit):
        gained = [pid for pid in now if now[pid] > before.get(pid, 0)]
        paused = gained if attempt >= 3 and len(gained) < len(now) else []
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        try:
            opened.append(await open_one(len(opened)))
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        now = stack.connections_per_worker()
        if len(now) == 2 and all(now[pid] > before.get(pid, 0) for pid in now):
            return opened
    raise AssertionError(f"{limit} clients all landed on one worker: {now}")


async def _ingest(client: httpx.AsyncClient, stack, seqs) -> None:
    response = await client.post(
        "/api/rovers/curiosity/telemetry",
        json=[frame(seq) for seq in seqs],
        headers=stack.auth("rover"),
    )
    assert response.status_code == 201, response.text


async def _all_message_ids(client: httpx.AsyncClient, stack) -> list[int]:
    response = await client.get("/api/teams/ops/messages?limit=200", headers=stack.auth("alice"))
    assert response.status_code == 200
    return [m["id"] for m in response.json()["messages"]]


async def _until_presence(members: list[RoomMember], change: str, username: str) -> None:
    """Wait until every member heard that `username` joined or left (a presence delta)."""
    async with asyncio.timeout(10):
        while not all(
            any(p.get(change, {}).get("username") == username for p in m.presence) for m in members
        ):
            await asyncio.sleep(0.05)


def test_clients_on_both_workers_get_every_frame_image_message_and_presence(stack):
    async def scenario():
        async with stack.client() as client:

            async def open_member(index: int) -> RoomMember:
                name = ("alice", "bob")[index % 2]
                member = RoomMember(stack.ws_url, stack.tokens[name]).start()
                await asyncio.wait_for(member.joined.wait(), 10)
                return member

            async def open_follower(index: int) -> SSEFollower:
                follower = SSEFollower(client, STREAM, stack.auth("alice")).start()
                await asyncio.wait_for(follower.connected.wait(), 10)
                return follower

            members = await _spread(stack, open_member)
            followers = await _spread(stack, open_follower)
            try:
                for start in range(1, 21, 4):
                    await _ingest(client, stack, range(start, start + 4))
                upload = await client.post(
                    "/api/rovers/curiosity/images",
                    files={"file": ("navcam.jpg", jpeg_bytes(), "image/jpeg")},
                    data={"camera": "navcam"},
                    headers=stack.auth("rover"),
                )
                assert upload.status_code == 201, upload.text
                for n, member in enumerate(members):
                    await member.send(f"hello from socket {n}", client_id=f"spread-{n}")
                carol = RoomMember(stack.ws_url, stack.tokens["carol"]).start()
                await _until_presence(members, "joined", "carol")
                await carol.stop()
                await _until_presence(members, "left", "carol")

                for follower in followers:
                    await follower.until_seq(20)
                expected = await _all_message_ids(client, stack)
                assert len(expected) == len(members)
                for member in members:
                    await member.until_id(expected[-1])
                for follower in followers:
                    assert follower.seqs == list(range(1, 21))
                    assert [image["id"] for image in follower.images] == [upload.json()["id"]]
                for member in members:
                    assert sorted(member.ids) == expected and len(set(member.ids)) == len(expected)
                    carol_events = [
                        "joined" if "joined" in p else "left"
                        for p in member.presence
                        if p.get("joined", p.get("left", {})).get("username") == "carol"
                    ]
                    assert carol_events == ["joined", "left"]
            finally:
                for client_ in (*followers, *members):
                    await client_.stop()

    asyncio.run(scenario())


# --- a rolling reload under load --------------------------------------------------


def test_rolling_reload_under_load_loses_and_doubles_nothing(stack):
    """`make reload` while frames and messages flow: resuming clients get each exactly once."""

    async def scenario():
        async with stack.client() as client:
            first_seq = 1000
            followers = [SSEFollower(client, STREAM, stack.auth("bob")).start() for _ in range(8)]
            members = [
                RoomMember(stack.ws_url, stack.tokens[name]).start()
                for name in ("alice", "bob", "alice", "bob")
            ]
            for waiter in (*(f.connected for f in followers), *(m.joined for m in members)):
                await asyncio.wait_for(waiter.wait(), 10)
            await _ingest(client, stack, [first_seq])
            for follower in followers:
                await follower.until_seq(first_seq)
            ids_before = set(await _all_message_ids(client, stack))
            stop = asyncio.Event()
            failures: list[str] = []
            seqs = itertools.count(first_seq + 1)
            sent: list[int] = []

            async def ingest_forever():
                while not stop.is_set():
                    seq = next(seqs)
                    try:
                        await _ingest(client, stack, [seq])
                    except (AssertionError, httpx.HTTPError) as exc:
                        failures.append(f"ingest {seq}: {exc}")
                        await _ingest(client, stack, [seq])  # the rover retries
                    sent.append(seq)
                    await asyncio.sleep(0.05)

            async def chat_forever():
                sender = RoomMember(stack.ws_url, stack.tokens["alice"]).start()
                for n in itertools.count():
                    if stop.is_set():
                        break
                    while True:
                        await asyncio.wait_for(sender.joined.wait(), 20)
                        try:
                            await sender.send(f"message {n}", client_id=f"reload-{n}")
                            break
                        except Exception:
                            await asyncio.sleep(0.05)
                    await asyncio.sleep(0.1)
                return sender

            load = [asyncio.ensure_future(ingest_forever()), asyncio.ensure_future(chat_forever())]
            await asyncio.sleep(1)
            old_workers = stack.worker_pids()
            reload = await asyncio.to_thread(stack.reload)
            assert reload.returncode == 0, reload.stderr
            assert "every worker replaced" in reload.stderr
            new_workers = stack.worker_pids()
            assert len(new_workers) == 2 and not (new_workers & old_workers)
            await asyncio.sleep(1.5)
            stop.set()
            _, sender = await asyncio.gather(*load)
            await sender.stop()

            last_seq = sent[-1]
            for follower in followers:
                await follower.until_seq(last_seq, within=30)
            expected = [i for i in await _all_message_ids(client, stack) if i not in ids_before]
            for member in members:
                await member.until_id(expected[-1], within=30)
            for client_ in (*followers, *members):
                await client_.stop()

            assert failures == []
            assert len(sent) > 20 and len(expected) > 10
            for follower in followers:
                assert len(follower.seqs) == len(set(follower.seqs))
                assert [s for s in follower.seqs if s >= first_seq] == list(
                    range(first_seq, last_seq + 1)
                )
            for member in members:
                assert len(member.ids) == len(set(member.ids))
                assert [i for i in member.ids if i not in ids_before] == expected
            # The workers were really replaced under these clients: each was told to go.
            assert all("restart" in follower.finals for follower in followers)
            assert all(1012 in member.close_codes for member in members)

    asyncio.run(scenario())


# --- downloads through nginx (X-Accel-Redirect) ----------------------------------


def test_image_downloads_through_nginx_keep_range_if_range_etag_304_and_416(stack):
    """make serve hands downloads to nginx; what the client sees is what the worker sends."""
    pixels = Image.frombytes("RGB", (200, 150), (bytes(range(256)) * 352)[: 200 * 150 * 3])
    buffer = io.BytesIO()
    pixels.save(buffer, "PNG")
    data = buffer.getvalue()
    etag = f'"{hashlib.sha256(data).hexdigest()}"'
    size = len(data)
    auth = stack.auth("rover")
    with httpx.Client(base_url=stack.url, timeout=10, headers=auth) as client:
        upload = client.post(
            "/api/rovers/curiosity/images", files={"file": ("mosaic.png", data, "image/png")}
        )
        assert upload.status_code == 201, upload.text
        url = upload.json()["url"]

        whole = client.get(url)
        assert whole.status_code == 200
        assert whole.content == data
        assert whole.headers["etag"] == etag
        assert whole.headers["content-length"] == str(size)
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-type"] == "image/png"
        assert whole.headers["content-disposition"] == 'inline; filename="mosaic.png"'
        assert whole.headers["x-content-type-options"] == "nosniff"
        assert "x-accel-redirect" not in whole.headers
        modified = whole.headers["last-modified"]

        def get(**headers):
            return client.get(url, headers=headers)

        part = get(Range="bytes=100-199")
        assert (part.status_code, part.content) == (206, data[100:200])
        assert part.headers["content-range"] == f"bytes 100-199/{size}"
        assert part.headers["etag"] == etag
        assert get(Range="bytes=-10").content == data[-10:]
        assert get(Range=f"bytes={size - 5}-").content == data[-5:]
        for validator in (etag, modified):
            resumed = get(Range="bytes=100-199", **{"If-Range": validator})
            assert (resumed.status_code, resumed.content) == (206, data[100:200])
        for stale in ('"0123"', "Mon, 01 Jan 2024 00:00:00 GMT", f"W/{etag}"):
            changed = get(Range="bytes=100-199", **{"If-Range": stale})
            assert (changed.status_code, changed.content) == (200, data)
        for ignored in ("bytes=0-1,5-6", "bytes=9-3", "bits=0-1"):
            assert (get(Range=ignored).status_code, get(Range=ignored).content) == (200, data)
        # Ranges nginx would read otherwise than the worker (positions past 18 digits,
        # spaces) answer as the worker decided, as under `make run`.
        for to_the_end in ("bytes=0-99999999999999999999", "bytes=-9223372036854775808"):
            whole_range = get(Range=to_the_end)
            assert (whole_range.status_code, whole_range.content) == (206, data), to_the_end
            assert whole_range.headers["content-range"] == f"bytes 0-{size - 1}/{size}"
        spaced = get(Range="bytes = 0-1")
        assert (spaced.status_code, spaced.content) == (206, data[:2])
        unsatisfiable = get(Range=f"bytes={size}-")
        assert unsatisfiable.status_code == 416
        assert unsatisfiable.headers["content-range"] == f"bytes */{size}"
        assert unsatisfiable.json()["error"] == "range_not_satisfiable"
        for cached in ({"If-None-Match": etag}, {"If-Modified-Since": modified}):
            not_modified = get(**cached)
            assert (not_modified.status_code, not_modified.content) == (304, b"")
            assert not_modified.headers["etag"] == etag
        assert get(**{"If-None-Match": '"other"'}).content == data
        assert get(**{"If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}).content == data
        assert get(**{"If-Match": etag}).content == data
        assert get(**{"If-Match": '"other"'}).status_code == 412
        assert get(**{"If-Unmodified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}).status_code == 412
        assert client.get(url, headers={"Authorization": "Bearer nope"}).status_code == 401
        # The internal location is not reachable from outside.
        assert client.get("/_accel/full/" + url).status_code == 404

    # Straight to a worker: it answers with the hand-over and no body; nginx sent the bytes.
    transport = httpx.HTTPTransport(uds=str(stack.run_dir / "uvicorn.sock"))
    with httpx.Client(transport=transport, base_url="http://127.0.0.1", headers=auth) as direct:
        handed = direct.get(url)
        assert handed.headers["x-accel-redirect"].startswith("/_accel/full/rover-images/")
        assert handed.content == b""


# --- client addresses and the access log -----------------------------------------


def test_behind_nginx_the_login_limit_counts_each_client_address(stack):
    """nginx (realip from 127.0.0.1) passes the client's address; the workers trust the socket."""
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        statuses = [post_login(client, "198.51.100.7", "wrong") for _ in range(12)]
        assert statuses[0] == 200 and statuses[-1] == 429
        assert post_login(client, "198.51.100.7", "pw-123456") == 429
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        assert post_login(client, "198.51.100.8", "pw-123456") == 302


def test_behind_nginx_urls_the_workers_build_keep_the_port_clients_used(stack):
    """nginx passes the Host header as the client sent it, port included (not `$host`).

    With `$host` a browser's login POST on port 8080 failed Django's CSRF Origin check (403:
    the Origin names the port, the Host did not), and a tus upload's Location pointed at port
    80. The login limit test above posts with a browser's Origin too.
    """
    auth = stack.auth("rover")
    with httpx.Client(base_url=stack.url, timeout=10, headers=auth) as client:
        created = client.post(
            "/api/rovers/curiosity/uploads/",
            headers={"Tus-Resumable": "1.0.0", "Upload-Length": "10"},
        )
        assert created.status_code == 201, created.text
        assert created.headers["location"].startswith(f"{stack.url}/api/rovers/curiosity/uploads/")
    with httpx.Client(base_url=stack.url, timeout=10) as client:
        assert post_login(client, "198.51.100.9", "pw-123456") == 302


def _answer_to_declared_length(stack, path: str, length: int, auth: dict[str, str]) -> bytes:
    """Send a POST's headers declaring `length` bytes of body, none of it; return the answer."""
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{stack.port}\r\nContent-Length: {length}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in auth.items())
    with socket.create_connection(("127.0.0.1", stack.port), timeout=5) as conn:
        conn.sendall(f"{head}Content-Type: application/json\r\n\r\n".encode())
        return conn.recv(65536)


def test_behind_nginx_only_image_uploads_may_send_large_bodies(stack):
    """A large body is refused by its declared length (JSON 413) before any of it is read.

    Before, nginx let 2 GiB through on every path, and a worker spooled the whole body to
    its temp directory before it found the sender anonymous.
    """
    answer = _answer_to_declared_length(stack, "/api/teams", 300 * 2**20, {})
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"application/json" in head
    assert json.loads(body)["error"] == "too_large"
    # The image uplink still takes large images (here 6 MB of noise as a PNG).
    side = 1400
    noise = Image.frombytes("RGB", (side, side), os.urandom(side * side * 3))
    buffer = io.BytesIO()
    noise.save(buffer, "PNG", compress_level=0)
    assert buffer.tell() > 4 * 2**20
    with httpx.Client(base_url=stack.url, timeout=30, headers=stack.auth("rover")) as client:
        upload = client.post(
            "/api/rovers/curiosity/images",
            files={"file": ("noise.png", buffer.getvalue(), "image/png")},
        )
        assert upload.status_code == 201, upload.text


def test_nginx_access_log_keeps_websocket_paths_but_never_the_token(stack):
    log = (stack.run_dir / "nginx-access.log").read_text()
    assert "/ws/comms/ops/" in log
    assert "token" not in log
    for token in stack.tokens.values():
        assert token not in log


# --- SIGTERM ---------------------------------------------------------------------


def test_sigterm_stops_the_whole_stack_gracefully_within_30_seconds(stack):
    async def scenario():
        async with stack.client() as client:
            follower = SSEFollower(client, STREAM, stack.auth("alice")).start()
            member = RoomMember(stack.ws_url, stack.tokens["bob"]).start()
            await asyncio.wait_for(follower.connected.wait(), 10)
            await asyncio.wait_for(member.joined.wait(), 10)
            pids = stack.all_pids()
            assert len(pids) >= 6  # serve.py, uvicorn + 2 workers, nginx + its workers
            started = time.monotonic()
            stack.terminate()
            returncode = await asyncio.to_thread(stack.proc.wait, 40)
            took = time.monotonic() - started
            await asyncio.sleep(0.2)
            await follower.stop()
            await member.stop()
            return returncode, took, pids, follower, member

    returncode, took, pids, follower, member = asyncio.run(scenario())
    assert returncode == 0, stack.log()
    assert took < 30
    assert follower.finals[:1] == ["restart"]
    assert member.close_codes[:1] == [1012]
    assert still_running(pids) == []
    assert not (stack.run_dir / "uvicorn.sock").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{stack.url}/healthz")


def test_sigterm_to_make_serve_stops_the_whole_stack(production_stacks):
    """SIGTERM to `make serve` (what a service manager or `kill` signals) reaches serve.py.

    GNU make passes SIGTERM on to the command it runs; when that command was the recipe's
    `sh -c`, the shell died and serve.py, uvicorn and nginx ran on without it.
    """
    stack = production_stacks(workers=1, through_make=True)
    pids = stack.all_pids()
    assert any("serve.py" in " ".join(psutil.Process(pid).cmdline()) for pid in pids)
    stack.terminate()
    stack.proc.wait(40)
    deadline = time.monotonic() + 30
    while (left := still_running(pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:  # make is gone: the fixture's stop could not find what is left
        if still_running({pid}):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()
    assert left == []
