"""Browser tests: Debian's Chromium driven by pytest-playwright against a real server.

Each test starts a real ASGI server process on the test database (`server_process`),
creates users, teams and a rover through the ORM, and feeds telemetry and images
through the HTTP API with a token, as the rover does.
"""

from __future__ import annotations

import io
import math
import os
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from math import cos, sin
from pathlib import Path

import httpx
import pytest

from testing.servers import ServerProcess

# Playwright's sync API runs an event loop in this thread; the ORM calls the tests
# make between browser steps are plain synchronous ones.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing (apt-get install chromium)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}}


@dataclass
class Mission:
    """A running server with a rover, two teams and two operators."""

    server: ServerProcess
    token: str
    rover_slug: str = "curiosity"
    seq: int = 0
    x: float = 0.0
    y: float = 0.0
    heading: float = 30.0
    errors: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.server.url

    def frame(self, *, seq: int | None = None, **values) -> dict:
        if seq is None:
            self.seq += 1
            seq = self.seq
        self.heading = (self.heading + random.uniform(-8, 12)) % 360
        rad = math.radians(self.heading)
        self.x += sin(rad) * 0.8
        self.y += cos(rad) * 0.8
        frame = {
            "seq": seq,
            "recorded_at": datetime.now(UTC).isoformat(),
            "battery_pct": round(80 - seq * 0.05, 2),
            "battery_v": 28.1,
            "signal_dbm": round(-95 + 8 * sin(seq / 9), 2),
            "temp_internal_c": round(12 + 3 * sin(seq / 25), 2),
            "temp_ambient_c": round(-40 + 6 * sin(seq / 40), 2),
            "speed_mps": 0.04,
            "x_m": round(self.x, 3),
            "y_m": round(self.y, 3),
            # 359.96 rounds to 360.0, which ingest refuses.
            "heading_deg": round(self.heading, 1) % 360,
            "mode": "driving",
        }
        frame.update(values)
        return frame

    def ingest(self, frames: list[dict]) -> dict:
        response = httpx.post(
            f"{self.url}/api/rovers/{self.rover_slug}/telemetry",
            json=frames,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10,
        )
        assert response.status_code in (200, 201), response.text
        return response.json()

    def ingest_history(self, count: int, *, start: datetime, every_s: float) -> None:
        """Store `count` frames recorded from `start`, one every `every_s` seconds."""
        history = [self.frame() for _ in range(count)]
        for index, frame in enumerate(history):
            frame["recorded_at"] = (start + timedelta(seconds=index * every_s)).isoformat()
        self.ingest(history)

    def upload_image(
        self, *, size: tuple[int, int] = (1400, 1000), camera: str = "", captured_at: str = ""
    ) -> dict:
        from PIL import Image

        # Noise does not compress: a PNG of a few MB, downloaded in many chunks.
        image = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        data = io.BytesIO()
        image.save(data, format="PNG")
        fields = {"camera": camera} if camera else {}
        if captured_at:
            fields["captured_at"] = captured_at
        response = httpx.post(
            f"{self.url}/api/rovers/{self.rover_slug}/images",
            files={"file": ("mars.png", data.getvalue(), "image/png")},
            data=fields,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text
        return response.json()


def make_mission(server_process, user_factory, token_for, *, server="daphne", env=None) -> Mission:
    """Rover, teams, operators (alice may acknowledge alarms) and a running server."""
    from comms.tests.factories import MembershipFactory, TeamFactory
    from rover.tests.factories import RoverFactory

    engineering = TeamFactory(name="Engineering", slug="engineering")
    science = TeamFactory(name="Science", slug="science")
    RoverFactory(slug="curiosity", name="Curiosity", alarm_team=engineering)
    alice = user_factory("alice", perms=("rover.change_alarm",))
    bob = user_factory("bob")
    downlink = user_factory("downlink", perms=("rover.add_telemetryframe", "rover.add_roverimage"))
    for user in (alice, bob):
        for team in (engineering, science):
            MembershipFactory(user=user, team=team)
    return Mission(server=server_process(server=server, env=env or {}), token=token_for(downlink))


@pytest.fixture
def mission(request, server_process, user_factory, token_for) -> Mission:
    """A mission on a server (indirect parametrize: "daphne" or "uvicorn")."""
    server = getattr(request, "param", "daphne")
    return make_mission(server_process, user_factory, token_for, server=server)


@pytest.fixture
def console_errors():
    """Attach to pages: collect console errors and uncaught page errors."""
    collected: list[str] = []

    def watch(page):
        page.on(
            "console",
            lambda msg: collected.append(f"console: {msg.text}") if msg.type == "error" else None,
        )
        page.on("pageerror", lambda exc: collected.append(f"pageerror: {exc}"))
        return page

    watch.errors = collected
    return watch
