"""Refusals explain themselves in the server's own terms, and quote a client's value briefly."""

from __future__ import annotations

import io

import pytest

from mission_control.parsing import ECHO_MAX_CHARS, client_repr
from rover.models import RoverImage
from rover.services.images import ImageRejected, image_store, metadata_parse

from .big_images import solid_png
from .factories import jpeg_bytes


def test_an_image_past_pillows_own_limit_names_this_servers_limit(rover, settings, tmp_path):
    """Pillow refuses ~179 MP itself before the header check; the 413 said Pillow's 178956970."""
    bomb = solid_png(tmp_path / "bomb.png", 14000, 14000)
    with pytest.raises(ImageRejected) as info:
        image_store(rover=rover, fileobj=io.BytesIO(bomb.read_bytes()))
    assert (info.value.status, info.value.code) == (413, "too_many_pixels")
    assert str(settings.IMAGE_MAX_PIXELS) in info.value.detail
    assert "178956970" not in info.value.detail
    assert not RoverImage.objects.exists()


def test_an_unknown_camera_is_quoted_briefly():
    with pytest.raises(ImageRejected) as info:
        metadata_parse(camera="x" * 100_000, captured_at=None)
    assert info.value.code == "invalid_camera"
    assert len(info.value.detail) < 200
    assert "(100000 characters)" in info.value.detail


def test_client_repr_keeps_short_values_whole():
    assert client_repr("navcam") == "'navcam'"
    long = client_repr("y" * 500)
    assert len(long) < ECHO_MAX_CHARS + 30 and long.endswith("(500 characters)")


def test_a_refused_upload_stores_nothing(rover):
    with pytest.raises(ImageRejected):
        image_store(rover=rover, fileobj=io.BytesIO(jpeg_bytes(8, 8)), camera="q" * 1000)
    assert not RoverImage.objects.exists()
