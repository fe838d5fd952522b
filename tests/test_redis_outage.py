"""Redis restarted empty under load, two real workers: nothing stored is lost or doubled.

Each test runs its own redis-server (never the shared one) and real uvicorn workers
over the test database (SQLite file or PostgreSQL), and stops all of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import httpx
import pytest

from streams.tests.redis_server import private_redis

from .missions import Mission, mission_create
from .outage_clients import EventSourceClient, RoomMember

__all__ = ["private_redis"]

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    # Its own redis-server whatever the pass; the pass only changes the database, and
    # the services pass has production's.
    pytest.mark.one_pass("services", why="its own redis-server"),
]

WORKER_ENV = {
    "SSE_RETRY_MS": "300",
    "SSE_HEARTBEAT_SECONDS": "1",
    "PRESENCE_REFRESH_SECONDS": "1",
    "ALARM_WATCHDOG_SECONDS": "0",
    # Exercised (one Redis script per message) but never reached by the test's pace.
    "CHAT_RATE_MESSAGES": "1000",
    "CHAT_RATE_SECONDS": "1",
}


@pytest.fixture
def mission(transactional_db, user_factory, token_for) -> Mission:
    """A rover, a team room with four members, and the tokens the clients use."""
    return mission_create(user_factory, token_for, members=4)


def frame(seq: int, **fields) -> dict:
    return {
        "seq": seq,
        "recorded_at": f"2026-11-25T12:{seq // 60 % 60:02d}:{seq % 60:02d}Z",
        "battery_pct": 80.0,
        "signal_dbm": -90.0,
        "mode": "driving",
        **fields,
    }


# What the store holds: telemetry seqs, the room's message ids and their bodies.
Stored = tuple[list[int], list[int], list[str]]


def _stored() -> Stored:
    from django.db import connection

    from comms.models import Message
    from rover.models import TelemetryFrame

    try:
        seqs = list(TelemetryFrame.objects.order_by("seq").values_list("seq", flat=True))
        messages = Message.objects.filter(team__slug="ops").order_by("id")
        return (
            seqs,
            list(messages.values_list("id", flat=True)),
            list(messages.values_list("body", flat=True)),
        )
    finally:
        connection.close()


async def _until(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.1)
    return condition()


async def _settled(holds_all, timeout: float) -> tuple[Stored, bool]:
    """Wait until every client holds what is stored, read afresh each round, twice running.

    The store is read again each time: a frame or message whose request was on its
    way when the load stopped is stored (and delivered) after any earlier snapshot.
    Two rounds at least 0.5 s apart with the same store and every client holding it
    mean the load's last writes have landed.
    """
    deadline = time.monotonic() + timeout
    confirmed = None
    while True:
        stored = await asyncio.to_thread(_stored)
        if holds_all(stored):
            if stored == confirmed:
                return stored, True
            confirmed = stored
        else:
            confirmed = None
        if time.monotonic() >= deadline:
            return stored, False
        await asyncio.sleep(0.5)


def test_a_redis_restart_loses_and_doubles_nothing_for_live_clients(
    server_process, private_redis, mission
):
    workers = [
        server_process(server="uvicorn", redis_url=private_redis.url, env=WORKER_ENV)
        for _ in range(2)
    ]
    stream = "/rovers/curiosity/telemetry/stream"
    feeds = [EventSourceClient(workers[i % 2].url + stream, mission.ingest_token) for i in range(4)]
    members = [
        RoomMember(workers[i % 2].port, "ops", token)
        for i, token in enumerate(mission.member_tokens)
    ]
    statuses: dict[str, list[int]] = {"before": [], "down": [], "after": []}
    phase = "before"
    said: list[str] = []
    # The load stops between requests, never mid-request: a cancelled POST is still
    # stored by the server, after the test would have read the store.
    stopping = False

    async def ingest(client: httpx.AsyncClient) -> None:
        seq = 0
        while not stopping:
            seq += 1
            url = f"{workers[seq % 2].url}/api/rovers/curiosity/telemetry"
            response = await client.post(
                url, json=frame(seq), headers={"Authorization": f"Bearer {mission.ingest_token}"}
            )
            statuses[phase].append(response.status_code)
            await asyncio.sleep(0.08)

    async def chat() -> None:
        # One sender, so message ids are published in id order (resume is by highest id).
        n = 0
        while not stopping:
            n += 1
            body = f"{phase}-{n}"
            if await members[0].say(body, client_id=f"c{n}"):
                said.append(body)
            await asyncio.sleep(0.15)

    def holds_all(stored) -> bool:
        seqs, message_ids, _ = stored
        return all(f.seqs[-1:] == seqs[-1:] for f in feeds) and all(
            set(m.accepted) >= set(message_ids) for m in members
        )

    async def scenario() -> dict:
        nonlocal phase, stopping
        clients = [asyncio.ensure_future(c.run()) for c in (*feeds, *members)]
        assert await _until(lambda: all(c.connections for c in (*feeds, *members)), 15)
        async with httpx.AsyncClient(timeout=httpx.Timeout(15)) as client:
            load = [asyncio.ensure_future(ingest(client)), asyncio.ensure_future(chat())]
            await asyncio.sleep(2)
            phase = "down"
            private_redis.shutdown()
            during = [len(c.connections) for c in (*feeds, *members)]
            await asyncio.sleep(2)
            after_outage = [len(c.connections) for c in (*feeds, *members)]
            private_redis.start()
            recovered_at = time.monotonic()
            phase = "after"
            await asyncio.sleep(3)
            stopping = True
            await asyncio.gather(*load)
        (seqs, message_ids, bodies), complete = await _settled(holds_all, 15)
        caught_up = time.monotonic() - recovered_at
        # Per member: the stored ids it lacks, when it (re)connected (s after recovery),
        # the server's error codes, failed connects, and a client loop that died.
        members_state = [
            {
                "missing": sorted(set(message_ids) - set(m.accepted)),
                "last": m.last,
                "connected_at": [round(t - recovered_at, 2) for t in m.connections],
                "errors": m.errors,
                "connect_failures": m.connect_failures[-3:],
                "died": repr(task.exception()) if task.done() else None,
            }
            for m, task in zip(members, clients[len(feeds) :], strict=True)
        ]
        for task in clients:
            task.cancel()
        await asyncio.gather(*clients, return_exceptions=True)
        return {
            "seqs": seqs,
            "message_ids": message_ids,
            "bodies": bodies,
            "during": during,
            "after_outage": after_outage,
            "complete": complete,
            "caught_up": caught_up,
            "members": members_state,
        }

    result = asyncio.run(scenario())
    # The workers' warnings (outage, resyncs, failures), not their access log lines.
    logs = "\n".join(
        line for w in workers for line in w.log().splitlines() if " INFO " not in line
    )[-4000:]
    # Ingest stored through the outage and never answered 500.
    assert statuses["down"], "no ingest happened while Redis was down"
    assert set(statuses["before"] + statuses["down"] + statuses["after"]) == {201}, statuses
    seqs = result["seqs"]
    assert seqs == list(range(1, len(seqs) + 1))
    # Chat stored through the outage too.
    assert any(body.startswith("down-") for body in result["bodies"]), said
    # Nobody was cut off (or spun) while Redis was away; everyone was after it came back.
    assert result["during"] == result["after_outage"]
    assert result["complete"], (
        result["members"],
        [(len(f.seqs), f.seqs[-3:], f.endings) for f in feeds],
        len(seqs),
        len(result["message_ids"]),
        logs,
    )
    for feed in feeds:
        assert feed.seqs == seqs, feed.endings  # every frame once, in order
        assert "resync" in feed.endings
    for member in members:
        assert sorted(member.accepted) == result["message_ids"]
        assert set(member.accepted.values()) == {1}, member.accepted.most_common(3)
        assert member.repeated_on_one_socket == []
        assert "resync" in member.errors
    assert result["caught_up"] < 15


def test_while_redis_is_down_ingest_stores_alarms_fire_and_clients_wait(
    server_process, private_redis, mission
):
    """Redis down and not back: 201s, alarms evaluated, SSE replays then waits, chat stores."""
    from comms.models import Message
    from rover.models import Alarm

    mission.rover.alarm_team = mission.team
    mission.rover.save(update_fields=["alarm_team"])
    worker = server_process(server="uvicorn", redis_url=private_redis.url, env=WORKER_ENV)
    private_redis.shutdown()
    ingest_url = f"{worker.url}/api/rovers/curiosity/telemetry"
    auth = {"Authorization": f"Bearer {mission.ingest_token}"}

    async def scenario() -> dict:
        async with httpx.AsyncClient(timeout=httpx.Timeout(15)) as client:
            answers = [
                await client.post(ingest_url, json=[frame(1), frame(2)], headers=auth),
                await client.post(ingest_url, json=frame(3, battery_pct=5.0), headers=auth),
                await client.post(ingest_url, json=frame(3, battery_pct=5.0), headers=auth),
            ]
            # A dashboard connecting now: retry hint, the replay, then heartbeats, not an end.
            lines: list[str] = []
            stream = f"{worker.url}/rovers/curiosity/telemetry/stream"
            headers = {**auth, "Last-Event-ID": "0"}
            async with client.stream("GET", stream, headers=headers) as response:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2.5):
                        async for line in response.aiter_lines():
                            lines.append(line)
        member = RoomMember(worker.port, "ops", mission.member_tokens[0])
        task = asyncio.ensure_future(member.run())
        assert await _until(lambda: member.socket is not None, 10)
        sent = [await member.say(f"while down {i}", client_id=f"d{i}") for i in range(3)]
        await asyncio.sleep(1.5)  # stored by the socket's writer; no echo without Redis
        still_open = member.socket is not None and len(member.connections) == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return {"answers": answers, "lines": lines, "sent": sent, "still_open": still_open}

    result = asyncio.run(scenario())
    answers = result["answers"]
    assert [a.status_code for a in answers] == [201, 201, 200], worker.log()[-2000:]
    assert answers[0].json() == {"stored": 2, "duplicates": []}
    assert answers[2].json() == {"stored": 0, "duplicates": [3]}  # a retry: not stored twice
    # Alarms were evaluated for the stored frame although nothing could be published.
    alarm = Alarm.objects.get(rover=mission.rover, kind="battery_low")
    assert alarm.seq == 3 and alarm.cleared_at is None
    # ...and posted into the alarm team's room, where members get it on `resume`.
    assert Message.objects.filter(team=mission.team, kind="alarm").count() == 1
    lines = result["lines"]
    assert lines[0] == "retry: 300"
    assert [line for line in lines if line.startswith("id: ")] == ["id: 1", "id: 2", "id: 3"]
    assert ": heartbeat" in lines and not any("overflow" in line for line in lines)
    # Chat: the socket stays open and its messages are stored.
    assert result["sent"] == [True, True, True] and result["still_open"]
    bodies = set(Message.objects.filter(team=mission.team).values_list("body", flat=True))
    assert {"while down 0", "while down 1", "while down 2"} <= bodies
