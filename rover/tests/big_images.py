"""Big images made cheaply (streamed PNG of one colour) and peak-RSS measurement (Linux)."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import psutil

T = TypeVar("T")
# PNG colour type and bytes per pixel of the modes written here.
_PNG_MODES = {"RGBA": (6, 4), "RGB": (2, 3), "L": (0, 1)}


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def solid_png(path: Path, width: int, height: int, *, mode: str = "RGBA") -> Path:
    """Write a valid PNG of width x height black pixels, row by row (a few MB at most).

    Such a file is small on disk and costs width x height x 4 bytes to decode:
    the decompression bomb of issue #13 (13000 x 13000 RGBA is ~3 MB here).
    """
    colour_type, channels = _PNG_MODES[mode]
    if path.exists():
        return path
    row = b"\0" * (1 + width * channels)
    compressor = zlib.compressobj(1)
    partial = path.with_suffix(".part")
    with open(partial, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)))
        pending = b""
        for _ in range(height):
            pending += compressor.compress(row)
            if len(pending) >= 1 << 20:
                out.write(_chunk(b"IDAT", pending))
                pending = b""
        pending += compressor.flush()
        out.write(_chunk(b"IDAT", pending))
        out.write(_chunk(b"IEND", b""))
    partial.replace(path)
    return path


def reset_peak_rss(pid: int) -> None:
    """Reset the kernel's high-water mark of a process's RSS (VmHWM)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pid: int) -> int:
    """Return the highest RSS of the process since its last reset, in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/<pid>/status")


def rss(pid: int) -> int:
    """Return the process's resident set size now, in bytes."""
    return psutil.Process(pid).memory_info().rss


def peak_growth(function: Callable[[], T], pid: int | None = None) -> tuple[T, int]:
    """Run `function`; return its result and how far the process's RSS peaked above the start."""
    pid = pid or psutil.Process().pid
    reset_peak_rss(pid)
    before = rss(pid)
    result = function()
    return result, peak_rss(pid) - before


def png_copy(data: bytes, label: str) -> bytes:
    """Return the same picture with a tEXt chunk after IHDR: other bytes, same pixels.

    The uplink answers a repeat of bytes already stored with the stored image, so
    tests that need several real stores of one big picture label each copy.
    """
    end_of_ihdr = 8 + 4 + 4 + 13 + 4
    return data[:end_of_ihdr] + _chunk(b"tEXt", b"Comment\0" + label.encode()) + data[end_of_ihdr:]
