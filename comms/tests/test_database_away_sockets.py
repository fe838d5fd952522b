"""Open room sockets while PostgreSQL refuses the worker: every request closes 1013, nothing hangs.

README (Outages): "an open socket whose messages cannot be stored, or whose
`history`/`resume` cannot be read, closes 1013. The messages of that batch are not
stored: the client resends them with the same `client_id` (stored once) after it
reconnects." tests/test_postgres_outage.py covers a message on an open socket;
this covers the reads, and the resend. The fault is real: the test database
refuses new connections and its backends are terminated (what a PostgreSQL
restart does to a worker's pool), under a real uvicorn worker.
"""

from __future__ import annotations

import asyncio
import json

import psycopg
import pytest
from django.conf import settings
from django.db import connection
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

pytestmark = [
    pytest.mark.skipif(
        "connection.vendor != 'postgresql'",
        reason="refuses connections to the PostgreSQL test database (MC_TEST_SERVICES=1)",
    ),
]

# Far above the worker's pool timeout (2 s): a socket that never closes fails here.
CLOSE_BOUND = 30


def _refuse(database: str, refuse: bool) -> None:
    """Make PostgreSQL refuse (and drop) the test database's connections, or accept them."""
    with psycopg.connect(settings.TEST_POSTGRES_URL, autocommit=True) as admin:
        admin.execute(
            f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {"false" if refuse else "true"}'
        )
        if refuse:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                [database],
            )


async def _joined(url: str):
    socket = await connect(url, origin="http://127.0.0.1")
    assert json.loads(await socket.recv())["type"] == "history"
    assert json.loads(await socket.recv())["type"] == "presence"
    return socket


async def _close_code(socket) -> int:
    with pytest.raises(ConnectionClosed) as closed:
        async with asyncio.timeout(CLOSE_BOUND):
            while True:
                await socket.recv()
    return closed.value.rcvd.code


def test_history_resume_and_messages_close_1013_and_the_resend_is_stored_once(
    server_process, user_factory, token_for
):
    from comms.models import Membership, Message, Team

    team = Team.objects.create(slug="ops", name="Ops")
    member = user_factory("alice")
    Membership.objects.create(team=team, user=member)
    first = Message.objects.create(team=team, author=member, body="before")
    token = token_for(member)
    worker = server_process(server="uvicorn", env={"DATABASE_POOL_TIMEOUT": "2"})
    url = f"ws://127.0.0.1:{worker.port}/ws/comms/ops/?token={token}"
    database = connection.settings_dict["NAME"]
    connection.close()  # this test's own connection is dropped with the others

    async def scenario() -> tuple[list[int], list[dict]]:
        sockets = [await _joined(url) for _ in range(3)]
        _refuse(database, True)
        try:
            requests = [
                {"type": "history", "before": first.id + 1},
                {"type": "resume", "after": 0},
                {"type": "message", "body": "while away", "client_id": "c-away"},
            ]
            for socket, request in zip(sockets, requests, strict=True):
                await socket.send(json.dumps(request))
            codes = [await _close_code(socket) for socket in sockets]
        finally:
            _refuse(database, False)
        # Back: the client reconnects and resends with the same client_id; then resends
        # it once more (an answer it missed) and sends a new message behind it, whose
        # echo proves the resend before it was handled.
        socket = await _joined(url)
        resend = {"type": "message", "body": "while away", "client_id": "c-away"}
        answers = []
        for request in (resend, resend, {"type": "message", "body": "next", "client_id": "c2"}):
            await socket.send(json.dumps(request))
        async with asyncio.timeout(CLOSE_BOUND):
            while len(answers) < 2:
                answers.append(json.loads(await socket.recv()))
        await socket.close()
        return codes, answers

    codes, answers = asyncio.run(scenario())
    assert codes == [1013, 1013, 1013], worker.log()[-3000:]
    # Stored once, echoed once (this socket already has it: the second resend is not
    # answered again), and nothing of the refused batch was stored during the outage.
    assert [(a["type"], a["client_id"]) for a in answers] == [
        ("message", "c-away"),
        ("message", "c2"),
    ], answers
    bodies = list(Message.objects.filter(team=team).order_by("id").values_list("body", flat=True))
    assert bodies == ["before", "while away", "next"]
