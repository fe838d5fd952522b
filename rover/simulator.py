"""A simulated rover: its physical model and its navcam pictures, free of any I/O.

The rover drives between waypoints, the battery drains while driving and
recharges in a compressed day, and temperatures follow day and night. Trouble is
opt-in (a scenario): with `fades` the signal fades now and then (frames are held
on board, so the server raises and clears "link lost"), with `faults` a fault
puts the rover in safe mode now and then; `healthy`, the default, has neither, so
a demo starts without alarms. Each such event is announced through `on_event`.
The `simulate_rover` command steps this model and posts the frames and pictures
through the HTTP API.
"""

from __future__ import annotations

import io
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, ImageDraw

SCENARIOS = {
    "healthy": {"fades": False, "faults": False},
    "fades": {"fades": True, "faults": False},
    "faults": {"fades": False, "faults": True},
    "eventful": {"fades": True, "faults": True},
}
FIRST_FADE_S = 120.0  # a demo shows a healthy start before any simulated trouble
FADE_GAP_S = (180.0, 420.0)
FAULT_EVERY_S = 600.0  # mean seconds between safe-mode faults


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
    next_fade_at: float = FIRST_FADE_S
    clock: float = 0.0
    fades: bool = False
    faults: bool = False
    on_event: Callable[[str], None] = field(default=lambda text: None)

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
        if self.fades and self.clock >= self.next_fade_at:
            length = self.rng.uniform(12, 20)
            self.fade_until = self.clock + length
            self.next_fade_at = self.fade_until + self.rng.uniform(*FADE_GAP_S)
            self.on_event(
                f"Scenario: the signal fades for {length:.0f} s (frames are held on board "
                "and sent afterwards; expect LINK LOST, then its clearing)."
            )
        if self.faults and self.mode != "safe_mode" and self.rng.random() < dt / FAULT_EVERY_S:
            self.mode = "safe_mode"
            self.mode_until = self.clock + self.rng.uniform(10, 25)
            self.waypoint = None
            self.on_event("Scenario: a fault puts the rover in safe mode for a few seconds.")
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
