"""bench/soak.py's plain HTTP traffic: the rover's ingest, image downloads and uploads."""

from __future__ import annotations

import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

from bench.images import write_noise_png

if TYPE_CHECKING:
    from bench.soak import SoakPlan, SoakResult
    from testing.stack import ProductionStack

INGEST = "/api/rovers/curiosity/telemetry"
IMAGES = "/api/rovers/curiosity/images"


def noise_png(side: int) -> bytes:
    """Return a new PNG of random noise (bench/images.py's), `side` pixels square."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "noise.png"
        write_noise_png(path, side)
        return path.read_bytes()


class Load:
    """The rover, the downloaders and the uploader: plain HTTP through nginx, one process."""

    def __init__(self, stack: ProductionStack, plan: SoakPlan, result: SoakResult) -> None:
        self.stack = stack
        self.plan = plan
        self.counts = result.counts
        self.errors = result.errors
        self.images: dict[str, bytes] = {}  # url -> the bytes uploaded
        self.stored_frames = 0

    def _failed(self, what: str, response: httpx.Response | None, exc=None) -> None:
        if response is None:
            self.errors[f"{what}: no answer ({type(exc).__name__})"] += 1
        else:
            self.errors[f"{what}: HTTP {response.status_code}"] += 1

    async def upload(self, client: httpx.AsyncClient, side: int) -> None:
        data = await asyncio.to_thread(noise_png, side)
        try:
            response = await client.post(
                IMAGES,
                files={"file": ("soak.png", data, "image/png")},
                headers=self.stack.auth("rover"),
                timeout=60,
            )
        except httpx.HTTPError as exc:
            return self._failed("upload", None, exc)
        if response.status_code != 201:
            return self._failed("upload", response)
        self.counts["uploads"] += 1
        self.images[response.json()["url"]] = data
        if len(self.images) > 20:  # the first (the largest) always stays
            del self.images[list(self.images)[1]]

    async def ingest(self, client: httpx.AsyncClient, until: float) -> None:
        start, seq = time.monotonic(), 0
        while time.monotonic() < until:
            seq += 1
            delay = start + (seq - 1) / self.plan.hz - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = {
                "seq": seq,
                "recorded_at": datetime.now(UTC).isoformat(),
                "battery_pct": 80.0,
                "signal_dbm": -90.0,
                "mode": "driving",
            }
            while True:  # the rover retries a frame until it is stored
                try:
                    response = await client.post(
                        INGEST, json=frame, headers=self.stack.auth("rover")
                    )
                except httpx.HTTPError as exc:
                    self._failed("ingest", None, exc)
                else:
                    if response.status_code == 201:
                        self.stored_frames += 1
                    if response.status_code in (200, 201):
                        break
                    self._failed("ingest", response)
                await asyncio.sleep(0.2)
            self.counts["ingest POSTs"] += 1

    async def download(self, client: httpx.AsyncClient, until: float) -> None:
        auth = self.stack.auth("alice")
        rng = random.Random()
        while time.monotonic() < until:
            url = rng.choice(list(self.images))
            data = self.images[url]
            whole = rng.random() < 0.5
            if whole:
                headers, want, status = auth, data, 200
            else:
                first = rng.randrange(len(data))
                last = rng.randrange(first, len(data))
                headers = {**auth, "Range": f"bytes={first}-{last}"}
                want, status = data[first : last + 1], 206
            kind = "downloads (whole)" if whole else "downloads (Range)"
            try:
                response = await client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                self._failed(kind, None, exc)
            else:
                if response.status_code != status:
                    self._failed(kind, response)
                elif response.content != want:
                    self.errors[f"{kind}: wrong bytes"] += 1
                else:
                    self.counts[kind] += 1
            await asyncio.sleep(0.2)

    async def uploads(self, client: httpx.AsyncClient, until: float) -> None:
        next_at = time.monotonic() + self.plan.upload_every
        while next_at < until:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await self.upload(client, 160)
            next_at += self.plan.upload_every
