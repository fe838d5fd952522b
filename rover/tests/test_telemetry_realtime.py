"""Two real server processes over real Redis: ingest on either, live SSE on both."""

from __future__ import annotations

import asyncio
import json
import random

import httpx
import pytest
from asgiref.sync import sync_to_async

from rover.tests.factories import frame

from .ingest_id_migration import migrate_from_seq_ids


class LiveReader:
    """Read an SSE response line by line into events (id, event, data)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()
        self.events: list[dict] = []

    async def until_seq(self, seq: int, timeout: float = 15) -> list[int]:
        async with asyncio.timeout(timeout):
            current: dict = {}
            while not any(e.get("id") == str(seq) for e in self.events):
                line = await anext(self.lines)
                if line == "":
                    if current:
                        self.events.append(current)
                    current = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(": ")
                    current[name] = value
        return [int(e["id"]) for e in self.events if e.get("event") == "telemetry"]


async def ingest(client: httpx.AsyncClient, url: str, token: str, seqs) -> dict:
    response = await client.post(
        f"{url}/api/rovers/curiosity/telemetry",
        json=[frame(i) for i in seqs],
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code in (200, 201), response.text
    return response.json()


@pytest.mark.slow
@pytest.mark.redis
async def test_frames_ingested_on_one_worker_reach_subscribers_on_another(
    server_process, redis_url, rover, ingest_token, viewer_token
):
    ingest_server = server_process(redis_url=redis_url)
    stream_server = server_process(redis_url=redis_url, server="uvicorn")
    stream_url = f"{stream_server.url}/rovers/curiosity/telemetry/stream"
    auth = {"Authorization": f"Bearer {viewer_token}"}
    async with httpx.AsyncClient(timeout=httpx.Timeout(20)) as client:
        await ingest(client, ingest_server.url, ingest_token, [1])
        async with client.stream("GET", stream_url, headers=auth) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            reader = LiveReader(response)
            assert await reader.until_seq(1) == [1]
            await ingest(client, ingest_server.url, ingest_token, range(2, 6))
            assert await reader.until_seq(5) == [1, 2, 3, 4, 5]
            data = json.loads(reader.events[-1]["data"])
            assert data["seq"] == 5 and data["battery_pct"] == 80.0
        # Away: 6..20 stored on the other worker. Back with Last-Event-ID while 21..40 arrive.
        await ingest(client, ingest_server.url, ingest_token, range(6, 21))

        async def keep_ingesting():
            for start in range(21, 41, 5):
                await ingest(client, ingest_server.url, ingest_token, range(start, start + 5))
                await asyncio.sleep(0.02)

        headers = {**auth, "Last-Event-ID": "5"}
        writer = asyncio.ensure_future(keep_ingesting())
        async with client.stream("GET", stream_url, headers=headers) as response:
            seqs = await LiveReader(response).until_seq(40)
        await writer
        assert seqs == list(range(6, 41))
        # Retried frames are reported, not stored or sent again.
        assert (await ingest(client, ingest_server.url, ingest_token, [39, 40])) == {
            "stored": 0,
            "duplicates": [39, 40],
        }


class FeedClient:
    """One SSE client of a real server: every telemetry event as (ingest id, seq)."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict) -> None:
        self.client, self.url, self.headers = client, url, headers
        self.received: list[tuple[int, int]] = []
        self.subscribed = asyncio.Event()
        self.wanted = 0
        self.done = asyncio.Event()

    async def run(self) -> None:
        async with self.client.stream("GET", self.url, headers=self.headers) as response:
            assert response.status_code == 200
            current: dict = {}
            async for line in response.aiter_lines():
                if line.startswith("retry:"):
                    self.subscribed.set()
                elif line.startswith(("id:", "event:", "data:")):
                    name, _, value = line.partition(": ")
                    current[name] = value
                elif line == "" and current:
                    if current.get("event") == "telemetry":
                        self.received.append(
                            (int(current["id"]), json.loads(current["data"])["seq"])
                        )
                    current = {}
                    if self.wanted and self.received and self.received[-1][0] >= self.wanted:
                        self.done.set()


@pytest.mark.slow
@pytest.mark.redis
async def test_concurrent_ingest_on_two_workers_reaches_every_client_once_in_ingest_order(
    server_process, redis_url, rover, ingest_token, viewer_token
):
    """Both workers store the same frames at once (late seqs, overlapping retries).

    The rover has frames from before the upgrade (seqs 1, 2, 3, 5, 8: their SSE ids
    were seqs); clients resume with those ids. Every client on either worker gets
    every frame after its position exactly once, in consecutive ingest id order.
    """
    await sync_to_async(migrate_from_seq_ids)({"curiosity": [1, 2, 3, 5, 8]})
    workers = [
        server_process(redis_url=redis_url, server="uvicorn"),
        server_process(redis_url=redis_url),
    ]
    auth = {"Authorization": f"Bearer {viewer_token}"}
    starts = [None, "3", None, "5"]  # Last-Event-ID of each client; None: a first connect
    async with httpx.AsyncClient(timeout=httpx.Timeout(20)) as http:
        feeds = [
            FeedClient(
                http,
                f"{workers[index % 2].url}/rovers/curiosity/telemetry/stream",
                auth if start is None else {**auth, "Last-Event-ID": start},
            )
            for index, start in enumerate(starts)
        ]
        readers = [asyncio.ensure_future(feed.run()) for feed in feeds]
        try:
            async with asyncio.timeout(20):
                await asyncio.gather(*(feed.subscribed.wait() for feed in feeds))
            new_seqs = [4, 6, 7, *range(9, 150)]  # 4, 6, 7 are late: below seq 8
            rng = random.Random(12)

            async def ingest_all(url: str, size: int) -> list[dict]:
                seqs = new_seqs[:]
                rng.shuffle(seqs)
                return [
                    await ingest(http, url, ingest_token, seqs[i : i + size])
                    for i in range(0, len(seqs), size)
                ]

            answers = await asyncio.gather(
                ingest_all(workers[0].url, 5), ingest_all(workers[1].url, 7)
            )
            assert sum(a["stored"] for a in answers[0] + answers[1]) == len(new_seqs)
            last_id = 8 + len(new_seqs)
            for feed in feeds:
                feed.wanted = last_id
                if feed.received and feed.received[-1][0] >= last_id:
                    feed.done.set()
            async with asyncio.timeout(20):
                await asyncio.gather(*(feed.done.wait() for feed in feeds))
            # A client that left before the upgrade (Last-Event-ID 2, a seq) comes back.
            late = FeedClient(
                http,
                f"{workers[1].url}/rovers/curiosity/telemetry/stream",
                {**auth, "Last-Event-ID": "2"},
            )
            late.wanted = last_id
            readers.append(asyncio.ensure_future(late.run()))
            async with asyncio.timeout(20):
                await late.done.wait()
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    stored = await sync_to_async(lambda: dict(rover.frames.values_list("ingest_id", "seq")))()
    assert sorted(stored.values()) == sorted([1, 2, 3, 5, 8, *new_seqs])
    expected_from = {None: 8, "3": 5, "5": 8, "2": 3}
    for feed, start in [*zip(feeds, starts, strict=True), (late, "2")]:
        first = expected_from[start]
        wanted = [i for i in sorted(stored) if i >= first]
        assert [event_id for event_id, _ in feed.received] == wanted, start
        assert all(stored[event_id] == seq for event_id, seq in feed.received[1:])
