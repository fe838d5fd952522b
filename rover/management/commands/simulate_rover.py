"""A simulated rover posting physically plausible telemetry (and images) through the HTTP API.

The rover drives between waypoints, the battery drains while driving and
recharges in a compressed day, temperatures follow day and night, the signal
fades and returns (frames are held on board during a fade and downlinked as a
batch afterwards, like a real store-and-forward radio), and now and then a
fault puts it in safe mode. Frames go through `POST /api/rovers/<slug>/telemetry`
exactly as a rover's would; a failed post is retried with the same seqs, so the
server reports duplicates instead of storing anything twice.
"""

from __future__ import annotations

import io
import math
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from django.core.management.base import BaseCommand, CommandError

MAX_BATCH = 200
FADE_THRESHOLD_DBM = -130.0


@dataclass
class RoverModel:
    """The rover's physical state, advanced in real seconds with a compressed day."""

    sol_seconds: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    x_m: float = 0.0
    y_m: float = 0.0
    heading_deg: float = 0.0
    battery_pct: float = 85.0
    temp_internal_c: float = 12.0
    mode: str = "idle"
    waypoint: tuple[float, float] | None = None
    mode_until: float = 0.0
    fade_until: float = 0.0
    next_fade_at: float = 60.0
    clock: float = 0.0

    def sun(self) -> float:
        """Return the sun's height in [-1, 1] (sine of the compressed day)."""
        return math.sin(2 * math.pi * (self.clock / self.sol_seconds + 0.1))

    def ambient_c(self) -> float:
        return -35.0 + 40.0 * self.sun()

    def signal_dbm(self) -> float:
        if self.clock < self.fade_until:
            return max(-200.0, -160.0 + self.rng.gauss(0, 5))
        wobble = 8.0 * math.sin(2 * math.pi * self.clock / 45.0)
        return min(-60.0, max(-125.0, -92.0 + wobble + self.rng.gauss(0, 1.5)))

    @property
    def link_down(self) -> bool:
        return self.clock < self.fade_until

    def _pick_waypoint(self) -> None:
        self.waypoint = (
            self.x_m + self.rng.uniform(-40, 40),
            self.y_m + self.rng.uniform(-40, 40),
        )
        self.mode = "driving"

    def _drive(self, dt: float) -> float:
        if self.waypoint is None:
            self._pick_waypoint()
        assert self.waypoint is not None
        dx, dy = self.waypoint[0] - self.x_m, self.waypoint[1] - self.y_m
        distance = math.hypot(dx, dy)
        if distance < 0.5:
            self.waypoint = None
            self.mode = "science"
            self.mode_until = self.clock + self.rng.uniform(10, 25)
            return 0.0
        target = math.degrees(math.atan2(dx, dy)) % 360
        turn = (target - self.heading_deg + 540) % 360 - 180
        self.heading_deg = (self.heading_deg + max(-20 * dt, min(20 * dt, turn))) % 360
        speed = 0.0 if abs(turn) > 30 else 1.2  # a demo rover: faster than the real 4 cm/s
        rad = math.radians(self.heading_deg)
        step = min(distance, speed * dt)
        self.x_m += step * math.sin(rad)
        self.y_m += step * math.cos(rad)
        return speed

    def step(self, dt: float) -> dict[str, Any]:
        """Advance dt seconds; return the frame fields (without seq and recorded_at)."""
        self.clock += dt
        if self.clock >= self.next_fade_at:
            self.fade_until = self.clock + self.rng.uniform(12, 20)
            self.next_fade_at = self.fade_until + self.rng.uniform(90, 240)
        if self.mode != "safe_mode" and self.rng.random() < dt / 400.0:
            self.mode = "safe_mode"
            self.mode_until = self.clock + self.rng.uniform(10, 25)
            self.waypoint = None
        speed = 0.0
        if self.mode == "safe_mode":
            if self.clock >= self.mode_until:
                self.mode = "idle"
        elif self.battery_pct < 25 or (self.mode == "charging" and self.battery_pct < 80):
            self.mode = "charging" if self.sun() > 0 else "idle"
        elif self.mode in ("science", "comms") and self.clock < self.mode_until:
            pass
        else:
            speed = self._drive(dt)
        drain = {"driving": 0.25, "science": 0.08, "safe_mode": 0.02}.get(self.mode, 0.03)
        charge = 0.3 * max(0.0, self.sun())
        self.battery_pct = min(100.0, max(0.0, self.battery_pct + (charge - drain) * dt))
        heat = 12.0 if self.mode == "driving" else 0.0
        target = 8.0 + 0.35 * (self.ambient_c() + 35.0) + heat
        self.temp_internal_c += (target - self.temp_internal_c) * min(1.0, dt / 30.0)
        return {
            "x_m": round(self.x_m, 3),
            "y_m": round(self.y_m, 3),
            "heading_deg": round(self.heading_deg, 2) % 360,
            "battery_pct": round(self.battery_pct, 2),
            "battery_v": round(24.0 + 8.0 * self.battery_pct / 100.0, 3),
            "signal_dbm": round(self.signal_dbm(), 1),
            "temp_internal_c": round(self.temp_internal_c + self.rng.gauss(0, 0.1), 2),
            "temp_ambient_c": round(self.ambient_c() + self.rng.gauss(0, 0.3), 2),
            "speed_mps": round(speed, 3),
            "mode": self.mode,
        }

    def resume_from(self, last: dict[str, Any]) -> None:
        """Continue from the last stored frame's position, battery and temperature."""
        for name in ("x_m", "y_m", "heading_deg", "battery_pct", "temp_internal_c"):
            if last.get(name) is not None:
                setattr(self, name, float(last[name]))


def navcam_jpeg(*, seq: int, sun: float, rng: random.Random) -> bytes:
    """Return a small generated navcam picture: sky, a horizon, rocks, a caption."""
    from PIL import Image, ImageDraw

    width, height = 320, 240
    light = 0.35 + 0.65 * max(0.0, sun)
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    horizon = 90 + rng.randint(-10, 10)
    for y in range(height):
        if y < horizon:
            tone = (int(200 * light), int(160 * light), int(130 * light))
        else:
            depth = (y - horizon) / (height - horizon)
            tone = (
                int((120 + 60 * depth) * light),
                int((70 + 30 * depth) * light),
                int((40 + 15 * depth) * light),
            )
        draw.line([(0, y), (width, y)], fill=tone)
    for _ in range(rng.randint(6, 16)):
        cx, cy = rng.randint(0, width), rng.randint(horizon + 5, height)
        r = rng.randint(2, 6 + (cy - horizon) // 6)
        shade = int(rng.randint(40, 90) * light)
        draw.ellipse(
            [cx - r, cy - r // 2, cx + r, cy + r // 2], fill=(shade, shade // 2, shade // 3)
        )
    draw.text((6, 6), f"NAVCAM seq {seq}", fill=(255, 255, 255))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


def simulator_token() -> str:
    """Create an API token for the 'simulator' user (same database as the local server)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission

    from accounts.services import token_create

    user, _ = get_user_model().objects.get_or_create(username="simulator")
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="rover",
            codename__in=["add_telemetryframe", "add_roverimage"],
        )
    )
    return token_create(user=user, name="simulate_rover")[1]


class Command(BaseCommand):
    help = "Simulate a rover: post plausible telemetry (and images) to a running server."

    def add_arguments(self, parser):
        parser.add_argument("--rover", default="curiosity", help="rover slug")
        parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
        parser.add_argument("--token", default="", help="API token (default: make one)")
        parser.add_argument("--wait", action="store_true", help="wait for the server to answer")
        parser.add_argument("--duration", type=float, default=0, help="stop after S seconds")
        parser.add_argument("--image-every", type=float, default=60, help="seconds; 0: never")
        parser.add_argument("--sol-seconds", type=float, default=300, help="length of a day")
        parser.add_argument("--seed", type=int, default=None, help="random seed")

    def handle(self, *args, **options):
        rate = options["rate"]
        if not 0 < rate <= 1000:
            raise CommandError("--rate must be between 0 and 1000 frames per second.")
        base = options["url"].rstrip("/")
        slug = options["rover"]
        token = options["token"] or simulator_token()
        self.frames_url = f"{base}/api/rovers/{slug}/telemetry"
        self.images_url = f"{base}/api/rovers/{slug}/images"
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(10.0)
        )
        try:
            if options["wait"]:
                self._wait_for_server()
            self._run(options, rate)
        except KeyboardInterrupt:
            pass
        finally:
            self.client.close()

    def _wait_for_server(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.client.get(self.frames_url, params={"limit": 1})
                return
            except httpx.TransportError:
                time.sleep(0.5)
        raise CommandError(f"No server answered at {self.frames_url} within {timeout:.0f} s.")

    def _last_frame(self) -> dict[str, Any] | None:
        response = self.client.get(self.frames_url, params={"limit": 1})
        if response.status_code == 404:
            raise CommandError(f"{response.json().get('detail')} (run 'manage.py seed_demo').")
        if response.status_code != 200:
            raise CommandError(f"Reading the last frame failed: {response.status_code}")
        frames = response.json()["frames"]
        return frames[-1] if frames else None

    def _run(self, options: dict[str, Any], rate: float) -> None:
        rng = random.Random(options["seed"])
        model = RoverModel(sol_seconds=options["sol_seconds"], rng=rng)
        last = self._last_frame()
        seq = 0 if last is None else int(last["seq"]) + 1
        if last is not None:
            model.resume_from(last)
        self.stdout.write(
            f"Simulating '{options['rover']}' at {rate:g} Hz from seq {seq} -> {self.frames_url}"
        )
        period = 1.0 / rate
        image_every = options["image_every"]
        started = time.monotonic()
        next_tick = started
        next_image = started + min(image_every, 5.0) if image_every > 0 else math.inf
        pending: list[dict[str, Any]] = []
        retry_at = 0.0
        stats = {"stored": 0, "duplicates": 0, "images": 0}
        while not options["duration"] or time.monotonic() - started < options["duration"]:
            fields = model.step(period)
            pending.append({"seq": seq, "recorded_at": datetime.now(UTC).isoformat(), **fields})
            seq += 1
            now = time.monotonic()
            if not model.link_down and now >= retry_at:
                retry_at = self._flush(pending, stats, now)
            if now >= next_image and not model.link_down:
                self._send_image(seq - 1, model, rng, stats)
                next_image = now + image_every
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5:
                next_tick = time.monotonic()  # far behind (suspended?): do not burst
        if pending:
            self._flush(pending, stats, time.monotonic())
        self.stdout.write(
            f"Stopped: {stats['stored']} frames stored, {stats['duplicates']} duplicates, "
            f"{stats['images']} images, {len(pending)} unsent."
        )

    def _flush(self, pending: list[dict[str, Any]], stats: dict[str, int], now: float) -> float:
        """Post the oldest pending frames as one batch; return when to try again."""
        while pending:
            batch = pending[:MAX_BATCH]
            try:
                response = self.client.post(self.frames_url, json=batch)
            except httpx.TransportError as exc:
                self.stderr.write(f"post failed ({exc.__class__.__name__}); retrying")
                return now + 1.0
            if response.status_code in (200, 201):
                body = response.json()
                stats["stored"] += body["stored"]
                stats["duplicates"] += len(body["duplicates"])
                del pending[: len(batch)]
                continue
            if response.status_code in (401, 403, 404):
                raise CommandError(f"The server refused the frames: {response.text}")
            if response.status_code == 400:
                # A bug in the model, not a network problem: report and drop the batch.
                self.stderr.write(f"frames refused: {response.text[:500]}")
                del pending[: len(batch)]
                continue
            self.stderr.write(f"server answered {response.status_code}; retrying")
            return now + 1.0
        return 0.0

    def _send_image(
        self, seq: int, model: RoverModel, rng: random.Random, stats: dict[str, int]
    ) -> None:
        data = navcam_jpeg(seq=seq, sun=model.sun(), rng=rng)
        try:
            response = self.client.post(
                self.images_url,
                files={"file": (f"navcam-{seq}.jpg", data, "image/jpeg")},
                data={"camera": "navcam", "captured_at": datetime.now(UTC).isoformat()},
            )
        except httpx.TransportError:
            return
        if response.status_code in (200, 201):
            stats["images"] += 1
        elif response.status_code != 404:  # 404: a server without the image uplink
            self.stderr.write(f"image upload answered {response.status_code}")
