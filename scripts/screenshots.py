"""Take the README's dashboard screenshots: `.venv/bin/python scripts/screenshots.py`.

Builds a throwaway mission (SQLite and media in a temporary folder: `migrate`,
`seed_demo`, one sol of telemetry history, team messages, images, a rover without
data), serves it with daphne, and photographs the dashboard with Debian's Chromium
at 1440x900 and 390x844 in five states: healthy, alarm, 1 sol, empty rover and
feed down. Writes docs/screenshots/<state>-<width>x<height>.png (about 40 s).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = [(1440, 900), (390, 844)]
SOL_SECONDS = 88775.244
PASSWORD = "mission-control"  # noqa: S105 - seed_demo's documented demo login


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def frame(seq: int, at: datetime, **values) -> dict:
    """A plausible frame: the battery follows the sun, temperatures day and night."""
    phase = (at.timestamp() % SOL_SECONDS) / SOL_SECONDS * 2 * math.pi
    heading = (seq * 0.7) % 360
    values = {
        "seq": seq,
        "recorded_at": at.isoformat(),
        "battery_pct": round(72 + 14 * math.sin(phase), 2),
        "battery_v": round(28 + math.sin(phase), 2),
        "signal_dbm": round(-92 + 6 * math.sin(seq / 7), 2),
        "temp_internal_c": round(14 + 6 * math.sin(phase - 0.6), 2),
        "temp_ambient_c": round(-45 + 30 * math.sin(phase - 0.9), 2),
        "speed_mps": 0.04,
        "x_m": round(40 * math.sin(seq / 400) + seq * 0.02, 2),
        "y_m": round(30 * math.cos(seq / 300) - 30, 2),
        "heading_deg": round(heading, 1),
        "mode": "driving",
        **values,
    }
    return values


def setup_django(workdir: Path) -> dict[str, str]:
    env = {
        "DJANGO_SETTINGS_MODULE": "mission_control.settings.base",
        "DATABASE_URL": f"sqlite:///{workdir / 'db.sqlite3'}",
        "MEDIA_ROOT": str(workdir / "media"),
        "REDIS_URL": "",
        "DEBUG": "true",
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    manage = [sys.executable, str(ROOT / "manage.py")]
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run([*manage, *command], cwd=ROOT, env={**os.environ}, check=True)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return env


def seed(now: datetime) -> tuple[str, int]:
    """Add the history the screenshots show; return a downlink token and the last seq."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from accounts.services import token_create
    from comms.models import Message, Team
    from rover.models import Rover, TelemetryFrame

    rover = Rover.objects.get(slug="curiosity")
    rover.landing_date = now - timedelta(seconds=SOL_SECONDS * 1412.4)
    rover.stale_after_seconds = 5
    rover.save()
    Rover.objects.get_or_create(slug="perseverance", defaults={"name": "Perseverance"})
    # One sol of history, a frame a minute, then the last five minutes at 1 Hz.
    times = [now - timedelta(seconds=SOL_SECONDS) + timedelta(minutes=m) for m in range(1470)]
    times = [t for t in times if t < now - timedelta(minutes=5)]
    times += [now - timedelta(seconds=300 - s) for s in range(300)]
    rows = [frame(seq, at) for seq, at in enumerate(times, start=1)]
    TelemetryFrame.objects.bulk_create(
        TelemetryFrame(rover=rover, **{**row, "recorded_at": at, "ingest_id": row["seq"]})
        for row, at in zip(rows, times, strict=True)
    )
    # The ingest API numbers the next frames after the rover's counter.
    Rover.objects.filter(pk=rover.pk).update(last_ingest_id=len(rows))
    for row, at in zip(rows[-400:], times[-400:], strict=True):
        TelemetryFrame.objects.filter(rover=rover, seq=row["seq"]).update(received_at=at)

    User = get_user_model()
    operator = User.objects.get(username="operator")
    for name in ("ada", "ravi", "mei"):
        user, _ = User.objects.get_or_create(username=name)
        for slug in ("engineering", "science", "navigation"):
            Team.objects.get(slug=slug).memberships.get_or_create(user=user)
    engineering = Team.objects.get(slug="engineering")
    chat = [
        (
            now - timedelta(days=1, minutes=20),
            operator,
            "Sol plan uplinked; drive starts at 09:00.",
        ),
        (
            now - timedelta(minutes=50),
            User.objects.get(username="ada"),
            "Battery charge looks nominal.",
        ),
        (
            now - timedelta(minutes=4),
            User.objects.get(username="mei"),
            "Hazcam clear, continuing to waypoint 7.",
        ),
        (now - timedelta(minutes=3), operator, "Plan notes: https://example.org/sol-1412"),
        (now - timedelta(minutes=2), User.objects.get(username="ada"), "Thermal margins fine."),
    ]
    for at, author, body in chat:
        message = Message.objects.create(team=engineering, author=author, body=body)
        Message.objects.filter(pk=message.pk).update(created_at=at)
    downlink = User.objects.get_or_create(username="downlink")[0]
    downlink.user_permissions.add(
        *Permission.objects.filter(codename__in=["add_telemetryframe", "add_roverimage"])
    )
    return token_create(user=downlink, name="screenshots")[1], len(rows)


class Server:
    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.env = {**os.environ, **env}
        self.log = open(workdir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        app = "mission_control.asgi:application"
        command = [sys.executable, "-m", "daphne", "-p", str(self.port), app]
        self.proc = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=self.log, stderr=self.log
        )
        for _ in range(200):
            try:
                httpx.get(f"{self.url}/accounts/login/", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self) -> None:
        if self.proc:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                # daphne may wait on open live streams: the "feed down" state needs it gone.
                self.proc.kill()
                self.proc.wait(5)
            self.proc = None


class Downlink(threading.Thread):
    """The rover: a frame every 200 ms through the ingest API while running."""

    def __init__(self, url: str, token: str, seq: int) -> None:
        super().__init__(daemon=True)
        self.url, self.token, self.seq = url, token, seq
        self.values: dict = {}
        self.running = threading.Event()
        self.running.set()

    def post(self, **values) -> None:
        self.seq += 1
        httpx.post(
            f"{self.url}/api/rovers/curiosity/telemetry",
            json=[frame(self.seq, datetime.now(UTC), **{**self.values, **values})],
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=5,
        )

    def run(self) -> None:
        while True:
            if self.running.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    self.post()
            time.sleep(0.2)


def upload_images(url: str, token: str) -> None:
    from rover.management.commands.seed_demo import mars_scene_jpeg

    for seed_, camera in ((7, "navcam"), (11, "hazcam_front"), (19, "mastcam")):
        httpx.post(
            f"{url}/api/rovers/curiosity/images",
            files={
                "file": (
                    "scene.jpg",
                    io.BytesIO(mars_scene_jpeg(800, 600, seed=seed_)),
                    "image/jpeg",
                )
            },
            data={"camera": camera},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        ).raise_for_status()


def main() -> None:
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="mc-screens-") as tmp:
        workdir = Path(tmp)
        env = setup_django(workdir)
        token, seq = seed(datetime.now(UTC))
        server = Server(env, workdir)
        server.start()
        downlink = Downlink(server.url, token, seq)
        downlink.start()
        upload_images(server.url, token)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            pages = []
            for width, height in VIEWPORTS:
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                page.goto(f"{server.url}/accounts/login/?next=/")
                page.fill("#id_username", "operator")
                page.fill("#id_password", PASSWORD)
                page.click("button[type=submit]")
                page.wait_for_selector("#status-panel[data-link=live]")
                pages.append(page)

            def shoot(state: str, *, wait: float = 1.5) -> None:
                time.sleep(wait)
                for page, (width, height) in zip(pages, VIEWPORTS, strict=True):
                    page.screenshot(path=str(OUT / f"{state}-{width}x{height}.png"))
                    print(f"docs/screenshots/{state}-{width}x{height}.png")

            shoot("healthy", wait=3)
            for page in pages:
                page.get_by_role("button", name="1 sol").click()
            shoot("sol")
            for page in pages:
                page.get_by_role("button", name="5 min").click()
            downlink.values = {"battery_pct": 9.5, "mode": "safe_mode"}
            shoot("alarm", wait=3)
            downlink.values = {}
            for page in pages:
                page.goto(f"{server.url}/?rover=perseverance")
                page.wait_for_selector("#status-panel[data-link=empty]")
            shoot("empty-rover")
            for page in pages:
                page.goto(f"{server.url}/?rover=curiosity")
                page.wait_for_selector("#status-panel[data-link=live]")
            downlink.running.clear()
            server.stop()
            for page in pages:
                page.wait_for_selector("#status-panel[data-link=down]")
            shoot("feed-down", wait=2)
            browser.close()


if __name__ == "__main__":
    main()
