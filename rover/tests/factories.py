"""factory_boy factories for rovers, and the raw data a rover sends: frames and pictures."""

from __future__ import annotations

import io
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import factory
from PIL import Image

from rover.models import AlarmLimits, Rover

BASE_TIME = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


class RoverFactory(factory.django.DjangoModelFactory):
    """A rover with its alarm limits (the defaults), as `seed_demo` makes one."""

    class Meta:
        model = Rover
        django_get_or_create = ("slug",)
        skip_postgeneration_save = True

    slug = factory.Sequence(lambda n: f"rover-{n}")
    name = factory.Sequence(lambda n: f"Rover {n}")

    @factory.post_generation
    def alarm_limits(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            AlarmLimits.objects.get_or_create(rover=self)


def frame(seq: int, **fields: Any) -> dict[str, Any]:
    """Return a valid telemetry frame as the rover posts it; `fields` override or add fields."""
    data: dict[str, Any] = {
        "seq": seq,
        "recorded_at": (BASE_TIME + timedelta(seconds=seq)).isoformat(),
        "battery_pct": 80.0,
        "signal_dbm": -90.0,
        "temp_internal_c": 15.0,
        "mode": "driving",
    }
    data.update(fields)
    return data


def jpeg_bytes(width: int = 64, height: int = 48, *, seed: int = 1) -> bytes:
    """Return a real JPEG of noise (so it does not compress to nothing)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return out.getvalue()


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    """Return a real, half-transparent PNG of one colour."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 90, 40, 128)).save(out, format="PNG")
    return out.getvalue()
