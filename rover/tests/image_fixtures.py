"""Image test data: real images drawn with Pillow, a rover, stored images."""

from __future__ import annotations

import io
import random

import pytest
from django.test import AsyncClient
from PIL import Image


def jpeg_bytes(width: int = 64, height: int = 48, *, seed: int = 1) -> bytes:
    """Return a real JPEG of noise (so it does not compress to nothing)."""
    rng = random.Random(seed)
    img = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=95)
    return out.getvalue()


def png_bytes(width: int = 40, height: int = 30) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), (200, 90, 40, 128)).save(out, format="PNG")
    return out.getvalue()


def media_files(root) -> list[str]:
    """Return every file under MEDIA_ROOT (relative), to prove nothing was left behind."""
    from pathlib import Path

    base = Path(root)
    return sorted(str(p.relative_to(base)) for p in base.rglob("*") if p.is_file())


@pytest.fixture
def rover(db):
    from rover.models import Rover

    return Rover.objects.get_or_create(slug="curiosity", defaults={"name": "Curiosity"})[0]


@pytest.fixture
def store_image(rover):
    """Store an image through the service: `store_image(data=..., **fields)`."""
    from rover.services.images import image_store

    def make(data: bytes | None = None, **fields):
        fields.setdefault("original_name", "frame.jpg")
        return image_store(rover=rover, fileobj=io.BytesIO(data or jpeg_bytes()), **fields)

    return make


class TokenClient(AsyncClient):
    """An AsyncClient sending `Authorization: Bearer <token>` on every request.

    (AsyncClient(headers=...) turns client-wide headers into `http-...` names.)
    """

    def __init__(self, token: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.auth_headers = {"Authorization": f"Bearer {token}"}

    def generic(self, method, path, *args, headers=None, **kwargs):
        headers = {**self.auth_headers, **(headers or {})}
        return super().generic(method, path, *args, headers=headers, **kwargs)


@pytest.fixture
def own_media_root(settings, tmp_path):
    """Give the test its own MEDIA_ROOT, so 'nothing left behind' is checked exactly."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    return settings.MEDIA_ROOT


@pytest.fixture
def close_thread_connections():
    """Close the connection async views opened on asgiref's shared thread after the test,
    so PostgreSQL lets the test database be dropped."""
    from asgiref.sync import SyncToAsync
    from django.db import connections

    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result(timeout=30)
