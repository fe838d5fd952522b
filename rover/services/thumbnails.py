"""Decode images within a memory bound: check pixels first, thumbnail cheaply, few at once.

A compressed image says nothing about what it costs to decode: a 650 KB PNG of
13000 x 13000 RGBA decodes to 676 MB (Pillow keeps 4 bytes a pixel for every
mode it stores as 32-bit, RGB included), and Pillow itself only refuses above
twice `Image.MAX_IMAGE_PIXELS` (~179 MP). So:

- `image_probe` reads the size from the header (Pillow's `open` is lazy) and
  refuses more than IMAGE_MAX_PIXELS before a single pixel is decoded. For PNG
  it then checks every chunk's CRC reading 1 MiB at a time (Pillow's `verify()`
  reads each chunk whole, and one IDAT chunk may be hundreds of MB).
- `thumbnail_jpeg` lets JPEG decode at 1/2 to 1/8 scale (`draft`); other
  formats decode in full (the pixel bound keeps that under IMAGE_MAX_PIXELS x 4
  bytes) and are shrunk with `reduce` strip by strip, so no second full-size
  copy exists (Pillow's resize and reduce would make one for RGBA).
- At most THUMBNAIL_CONCURRENCY thumbnails are made at once per process; the
  others wait (up to THUMBNAIL_WAIT_SECONDS, then `ThumbnailBusy`).
"""

from __future__ import annotations

import io
import struct
import threading
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from PIL import Image

THUMBNAIL_PX = 320
THUMBNAIL_WAIT_SECONDS = 60.0
READ_BYTES = 1024 * 1024
# Pixels converted at a time while shrinking a decoded image.
STRIP_PIXELS = 500_000
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# IMAGE_MAX_PIXELS is the bound; Pillow's warning above its own (laxer) one is noise.
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


class TooManyPixels(ValueError):
    """The image has more pixels than IMAGE_MAX_PIXELS (found from its header)."""

    def __init__(self, width: int, height: int, limit: int) -> None:
        super().__init__(
            f"The image has {width} x {height} = {width * height} pixels; "
            f"at most {limit} are accepted."
        )
        self.width = width
        self.height = height
        self.limit = limit


class ThumbnailBusy(RuntimeError):
    """Every thumbnail slot stayed taken for THUMBNAIL_WAIT_SECONDS."""


@dataclass(frozen=True)
class Probe:
    """What the header says: Pillow's format name and the size in pixels."""

    format: str
    width: int
    height: int


def pixels_check(width: int, height: int) -> None:
    """Raise TooManyPixels when width x height is over IMAGE_MAX_PIXELS."""
    limit = settings.IMAGE_MAX_PIXELS
    if width * height > limit:
        raise TooManyPixels(width, height, limit)


def _png_verify(path: Path) -> None:
    """Check a PNG's chunk CRCs up to IEND in bounded reads; raise SyntaxError when bad."""
    with open(path, "rb") as source:
        if source.read(8) != PNG_SIGNATURE:
            raise SyntaxError("not a PNG signature")
        while True:
            head = source.read(8)
            if len(head) < 8:
                raise SyntaxError("truncated PNG (no IEND chunk)")
            length, kind = struct.unpack(">I4s", head)
            crc = zlib.crc32(kind)
            left = length
            while left:
                block = source.read(min(READ_BYTES, left))
                if not block:
                    raise SyntaxError(f"truncated PNG chunk {kind!r}")
                crc = zlib.crc32(block, crc)
                left -= len(block)
            stored = source.read(4)
            if len(stored) < 4 or struct.unpack(">I", stored)[0] != crc:
                raise SyntaxError(f"broken PNG chunk {kind!r} (CRC mismatch)")
            if kind == b"IEND":
                return


def image_probe(path: Path) -> Probe:
    """Return the image's format and size, refusing too many pixels before decoding.

    Raise TooManyPixels, or Pillow's own errors (UnidentifiedImageError, OSError,
    SyntaxError, ValueError) for data that is not a well-formed image.
    """
    with Image.open(path) as img:
        probe = Probe(format=img.format or "", width=img.width, height=img.height)
        pixels_check(probe.width, probe.height)
        if probe.format != "PNG":
            # JPEG, GIF, TIFF, WebP and BMP verify() read headers only, never all pixels.
            img.verify()
    if probe.format == "PNG":
        _png_verify(path)
    return probe


_slots: threading.BoundedSemaphore | None = None
_slots_size = 0
_slots_lock = threading.Lock()


def _thumbnail_slots() -> threading.BoundedSemaphore:
    global _slots, _slots_size
    size = max(1, settings.THUMBNAIL_CONCURRENCY)
    with _slots_lock:
        if _slots is None or _slots_size != size:
            _slots, _slots_size = threading.BoundedSemaphore(size), size
        return _slots


@contextmanager
def thumbnail_slot(timeout: float = THUMBNAIL_WAIT_SECONDS) -> Iterator[None]:
    """Hold one of THUMBNAIL_CONCURRENCY slots for a decode; raise ThumbnailBusy on timeout."""
    slots = _thumbnail_slots()
    if not slots.acquire(timeout=timeout):
        raise ThumbnailBusy("Too many images are being processed; retry shortly.")
    try:
        yield
    finally:
        slots.release()


def _flatten(strip: Image.Image, mode: str) -> Image.Image:
    """Return a strip in `mode` ("L" or "RGB"), transparent pixels laid on black."""
    if strip.mode == mode:
        return strip
    if mode == "L":
        return strip.convert("L")
    rgba = strip if strip.mode == "RGBA" else strip.convert("RGBA")
    flat = Image.new("RGB", rgba.size, (0, 0, 0))
    flat.paste(rgba, mask=rgba.getchannel("A"))
    return flat


def _reduce_in_strips(img: Image.Image, factor: int) -> Image.Image:
    """Return the decoded image flattened and shrunk by `factor` (a box average).

    Pillow's own reduce() and resize() first convert an RGBA image to
    premultiplied RGBa, a second full-size copy; working on strips of about
    STRIP_PIXELS keeps what exists next to the decoded image that small.
    """
    mode = "L" if img.mode == "L" else "RGB"
    width, height = img.size
    out = Image.new(mode, (-(-width // factor), -(-height // factor)))
    rows = max(factor, STRIP_PIXELS // width // factor * factor)
    for top in range(0, height, rows):
        strip = _flatten(img.crop((0, top, width, min(height, top + rows))), mode)
        out.paste(strip.reduce(factor) if factor > 1 else strip, (0, top // factor))
    return out


def thumbnail_jpeg(path: Path, *, size: int = THUMBNAIL_PX) -> bytes:
    """Return a JPEG thumbnail at most `size` px on its longer side, within the pixel bound.

    Decoding the pixels is also the last check: verify() does not decode JPEG
    data, so a truncated or corrupt file fails here (OSError, SyntaxError,
    ValueError). The decoded image is the only full-size buffer.
    """
    with thumbnail_slot():
        with Image.open(path) as img:
            pixels_check(img.width, img.height)
            # JPEG decodes straight at 1/2 to 1/8 scale; other formats ignore draft().
            img.draft("RGB", (size * 2, size * 2))
            img.load()
            factor = max(1, max(img.size) // (size * 2))
            small = _reduce_in_strips(img, factor)
        small.thumbnail((size, size))
        out = io.BytesIO()
        small.save(out, format="JPEG", quality=80, optimize=True)
        return out.getvalue()
