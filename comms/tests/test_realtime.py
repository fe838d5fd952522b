"""Team rooms over real servers: two uvicorn workers sharing real Redis, a real client."""

from __future__ import annotations

import asyncio
import json

import pytest
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.slow]


async def _join(server, token: str, slug: str = "ops"):
    socket = await connect(
        f"ws://127.0.0.1:{server.port}/ws/comms/{slug}/?token={token}",
        origin="http://127.0.0.1",
        max_size=2**22,
    )
    history = json.loads(await asyncio.wait_for(socket.recv(), 5))
    presence = json.loads(await asyncio.wait_for(socket.recv(), 5))
    assert history["type"] == "history" and presence["type"] == "presence"
    return socket, presence


async def _next(socket, kind: str) -> dict:
    while True:
        frame = json.loads(await asyncio.wait_for(socket.recv(), 5))
        if frame["type"] == kind:
            return frame


@pytest.mark.redis
def test_message_and_presence_cross_workers_over_redis(server_process, redis_url, room, token_for):
    worker_a = server_process(server="uvicorn", redis_url=redis_url)
    worker_b = server_process(server="uvicorn", redis_url=redis_url)
    alice_token, bob_token = token_for(room.alice), token_for(room.bob)

    async def scenario():
        alice, presence = await _join(worker_a, alice_token)
        assert [u["username"] for u in presence["online"]] == ["alice"]
        bob, presence = await _join(worker_b, bob_token)
        # Presence is shared: bob, on worker B, sees alice on worker A...
        assert [u["username"] for u in presence["online"]] == ["alice", "bob"]
        # ...and alice hears of bob's arrival through Redis.
        update = await _next(alice, "presence")
        assert update["joined"]["username"] == "bob"
        await alice.send(json.dumps({"type": "message", "body": "A to B", "client_id": "x1"}))
        mine = await _next(alice, "message")
        theirs = await _next(bob, "message")
        assert theirs == mine
        assert theirs["body"] == "A to B" and theirs["author"]["username"] == "alice"
        await bob.close()
        update = await _next(alice, "presence")
        assert update == {"type": "presence", "left": {"id": room.bob.pk, "username": "bob"}}
        await alice.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_frame_over_64_kib_closes_1009_on_a_real_server(
    server_process, room, token_for, server_name
):
    server = server_process(server=server_name)
    token = token_for(room.alice)

    async def scenario():
        socket, _ = await _join(server, token)
        await socket.send("y" * (64 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
        # daphne (runserver) cannot send 1009: see comms.consumers.
        assert closed.value.rcvd.code == (1009 if server_name == "uvicorn" else 4009)

    asyncio.run(scenario())


@pytest.mark.parametrize("server_name", ["uvicorn", "daphne"])
def test_refusals_reach_a_real_client_as_close_codes(server_process, room, token_for, server_name):
    server = server_process(server=server_name)
    token = token_for(room.carol)

    async def closed_code(path: str) -> int:
        socket = await connect(f"ws://127.0.0.1:{server.port}{path}", origin="http://127.0.0.1")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 5)
        return closed.value.rcvd.code

    async def scenario():
        assert await closed_code("/ws/comms/ops/") == 4401
        assert await closed_code(f"/ws/comms/nope?token={token}") == 4404
        assert await closed_code(f"/ws/comms/ops/?token={token}") == 4403

    asyncio.run(scenario())


@pytest.mark.redis
def test_removal_in_another_process_closes_the_socket_on_the_worker(
    server_process, redis_url, redis_channel_layer, room, token_for
):
    from comms.services import team_member_remove

    worker = server_process(server="uvicorn", redis_url=redis_url)
    token = token_for(room.bob)

    def remove() -> None:
        try:
            team_member_remove(team=room.team, user=room.bob)
        finally:
            connection.close()  # this thread's connection, so the test database can go

    async def scenario():
        bob, _ = await _join(worker, token)
        # As the admin does it, from synchronous code in another process.
        await asyncio.to_thread(remove)
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(bob.recv(), 5)
        assert closed.value.rcvd.code == 4403

    asyncio.run(scenario())


@pytest.mark.redis
def test_a_killed_workers_sockets_leave_presence_after_the_ttl(
    server_process, redis_url, room, token_for
):
    fast = {"PRESENCE_TTL_SECONDS": "1.5", "PRESENCE_REFRESH_SECONDS": "0.3"}
    worker_a = server_process(server="uvicorn", redis_url=redis_url, env=fast)
    worker_b = server_process(server="uvicorn", redis_url=redis_url, env=fast)
    alice_token, bob_token = token_for(room.alice), token_for(room.bob)

    async def scenario():
        alice, _ = await _join(worker_a, alice_token)
        _bob, presence = await _join(worker_b, bob_token)
        assert [u["username"] for u in presence["online"]] == ["alice", "bob"]
        assert (await _next(alice, "presence"))["joined"]["username"] == "bob"
        worker_b.proc.kill()  # no disconnect handler runs
        worker_b.proc.wait()
        update = await _next(alice, "presence")
        assert [u["username"] for u in update["online"]] == ["alice"]
        await alice.close()

    asyncio.run(scenario())
