"""Two real server processes over real Redis: ingest on one, live SSE on the other."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from rover.tests.factories import frame


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
