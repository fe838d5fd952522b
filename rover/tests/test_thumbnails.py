"""Decoding within bounds: pixels checked from the header, thumbnails without a second copy."""

from __future__ import annotations

import io
import threading
import zlib
from pathlib import Path

import pytest
from PIL import Image

from rover.services.thumbnails import (
    ThumbnailBusy,
    TooManyPixels,
    image_probe,
    thumbnail_jpeg,
    thumbnail_slot,
)

from .big_images import peak_growth, solid_png

MB = 1024 * 1024


@pytest.fixture(scope="session")
def big_images(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("big-images")


def test_probe_refuses_13000_squared_png_from_its_header(big_images):
    bomb = solid_png(big_images / "bomb-13000.png", 13000, 13000)
    assert bomb.stat().st_size < 4 * MB

    def probe() -> TooManyPixels:
        with pytest.raises(TooManyPixels) as info:
            image_probe(bomb)
        return info.value

    refused, growth = peak_growth(probe)
    assert (refused.width, refused.height) == (13000, 13000)
    assert growth < 20 * MB


def test_pixel_bound_is_a_setting(settings, big_images):
    path = solid_png(big_images / "small-600x400.png", 600, 400)
    assert image_probe(path).width == 600
    settings.IMAGE_MAX_PIXELS = 600 * 400 - 1
    with pytest.raises(TooManyPixels):
        image_probe(path)
    with pytest.raises(TooManyPixels):
        thumbnail_jpeg(path)


def test_largest_accepted_png_thumbnail_stays_within_decode_size(settings, big_images):
    side = int(settings.IMAGE_MAX_PIXELS**0.5)
    path = solid_png(big_images / f"largest-{side}.png", side, side)
    image_probe(path)
    data, growth = peak_growth(lambda: thumbnail_jpeg(path))
    assert Image.open(io.BytesIO(data)).size == (320, 320)
    decoded = side * side * 4
    # The decoded image plus strips, never Pillow's second full-size RGBa copy.
    assert growth < decoded + 40 * MB, growth / MB
    assert growth < 200 * MB


def test_big_jpeg_thumbnail_decodes_at_reduced_scale(tmp_path):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (6000, 4000), (10, 200, 30)).save(path, quality=90)
    data, growth = peak_growth(lambda: thumbnail_jpeg(path))
    assert Image.open(io.BytesIO(data)).size == (320, 213)
    assert growth < 30 * MB  # a full decode would be 96 MB


def test_png_with_a_broken_crc_is_refused(tmp_path):
    good = io.BytesIO()
    Image.new("RGB", (20, 10), (1, 2, 3)).save(good, format="PNG")
    data = bytearray(good.getvalue())
    data[-20] ^= 0xFF  # inside the IDAT chunk
    path = tmp_path / "broken.png"
    path.write_bytes(bytes(data))
    with pytest.raises(SyntaxError):
        image_probe(path)


def test_png_with_one_huge_idat_chunk_is_verified_in_bounded_reads(tmp_path):
    """Pillow's verify() reads a chunk whole; ours 1 MiB at a time."""
    raw = b"".join(b"\0" + bytes(range(256)) * 12 for _ in range(4000))  # 3072 x 4000, L
    import struct

    from .big_images import _chunk

    body = zlib.compress(raw, 0)  # stored: one ~12 MB IDAT chunk
    path = tmp_path / "one-idat.png"
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", struct.pack(">IIBBBBB", 3072, 4000, 8, 0, 0, 0, 0))
        + _chunk(b"IDAT", body)
        + _chunk(b"IEND", b"")
    )
    probe, growth = peak_growth(lambda: image_probe(path))
    assert (probe.format, probe.width) == ("PNG", 3072)
    assert growth < 6 * MB, growth / MB


def test_thumbnails_wait_for_a_free_slot(settings, tmp_path):
    settings.THUMBNAIL_CONCURRENCY = 1
    path = tmp_path / "t.png"
    Image.new("RGB", (50, 50)).save(path)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with thumbnail_slot():
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        with pytest.raises(ThumbnailBusy), thumbnail_slot(timeout=0.2):
            pass
    finally:
        release.set()
        holder.join()
    assert thumbnail_jpeg(path)
