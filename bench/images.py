"""Image download benchmark: the product's streamed download vs the seed's 4 KiB aiofiles loop.

    .venv/bin/python bench/images.py            # full run, a few minutes
    .venv/bin/python bench/images.py --quick    # smaller caps, for a smoke run

Servers run as in production (DJANGO_SETTINGS_MODULE=bench.images_settings, which is
mission_control.settings.production plus a bench-only URL for the seed baseline;
SECRET_KEY/ALLOWED_HOSTS set; PostgreSQL database mc_bench_images), one process each
so psutil sees the whole server. curl is the client (C, so the client is not the
bottleneck on a small machine). The images are real PNGs that Pillow verifies and
decodes: 16-bit RGBA random noise, stored uncompressed (deflate level 0), which is
why they are big: 50 MB (2560x2560), 200 MB (5120x5120), 1 GB (11585x11585). They
are stored once through image_store and reused by later runs.

Measured per server: MB/s of one download and of 20 at once (aggregate), the
first-byte time, and the server's resident memory growth; runs longer than their
cap are cut off and counted by bytes received. A slow reader (curl --limit-rate 1M)
on the 200 MB image shows whether the server buffers what the client cannot take.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testing.servers import ServerName, ServerProcess  # noqa: E402

DB_NAME = "mc_bench_images"
DB_URL = f"postgres://postgres@127.0.0.1:5432/{DB_NAME}"
WORK = Path(os.environ.get("BENCH_IMAGES_DIR", "/tmp/mc-bench-images"))
MEDIA = WORK / "media"
MB = 1024 * 1024
IMAGES = {"50MB": 2560, "200MB": 5120, "1GB": 11585}  # side of a 16-bit RGBA square
ENV = {
    "DJANGO_SETTINGS_MODULE": "bench.images_settings",
    "SECRET_KEY": "bench-only-secret-key-0123456789abcdefghijklmnopqrstuvwxyz",
    "ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DATABASE_URL": DB_URL,
    "MEDIA_ROOT": str(MEDIA),
    # Plain HTTP on 127.0.0.1: no 301 to https (as bench/common.py).
    "SECURE_SSL_REDIRECT": "false",
    "SECURE_COOKIES": "false",
    "LOG_LEVEL": "WARNING",
    # The download images (up to 11585 x 11585 = 134 MP) are stored by this script, not
    # uploaded, so they may pass the upload bound (IMAGE_MAX_PIXELS, 40 MP by default);
    # their thumbnails cost this process ~540 MB once.
    "IMAGE_MAX_PIXELS": str(200_000_000),
}


def write_noise_png(path: Path, side: int) -> None:
    """Write a real 16-bit RGBA PNG of random noise, deflate level 0, row by row."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    squash = zlib.compressobj(level=0)
    with open(path, "wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.write(chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)))
        pending = []
        size = 0
        for _ in range(side):
            data = squash.compress(b"\x00" + os.urandom(side * 8))
            pending.append(data)
            size += len(data)
            if size >= 8 * MB:
                out.write(chunk(b"IDAT", b"".join(pending)))
                pending, size = [], 0
        pending.append(squash.flush())
        out.write(chunk(b"IDAT", b"".join(pending)))
        out.write(chunk(b"IEND", b""))


def setup() -> tuple[str, dict[str, int]]:
    """Create/migrate the bench database, store the images once; return (token, ids)."""
    os.environ.update(ENV)
    subprocess.run(
        ["createdb", "-h", "127.0.0.1", "-U", "postgres", DB_NAME],
        capture_output=True,
        check=False,
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        check=True,
        env={**os.environ, **ENV},
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model

    from accounts.services import token_create
    from rover.models import Rover, RoverImage
    from rover.services.images import image_store

    rover, _ = Rover.objects.get_or_create(slug="curiosity", defaults={"name": "Curiosity"})
    user, _ = get_user_model().objects.get_or_create(username="bench")
    ids = {}
    for label, side in IMAGES.items():
        name = f"bench-{label}.png"
        image = RoverImage.objects.filter(rover=rover, original_name=name).first()
        if image is not None and Path(image.file.path).exists():
            ids[label] = image.pk
            continue
        WORK.mkdir(parents=True, exist_ok=True)
        raw = WORK / name
        started = time.monotonic()
        write_noise_png(raw, side)
        image = image_store(rover=rover, path=raw, user=user, original_name=name)
        print(
            f"stored {name}: {image.size / MB:.0f} MiB, {image.width}x{image.height}, "
            f"{time.monotonic() - started:.1f} s",
            flush=True,
        )
        ids[label] = image.pk
    return token_create(user=user, name="bench")[1], ids


@contextmanager
def server(kind: ServerName, chunk_bytes: int) -> Iterator[tuple[int, psutil.Process]]:
    """Run one server process as in production; yield its port and its process to measure."""
    env = {**os.environ, **ENV, "IMAGE_STREAM_CHUNK_BYTES": str(chunk_bytes)}
    options = ["--log-level", "warning"] if kind == "uvicorn" else []
    log_path = WORK / f"server-{kind}.log"
    with ServerProcess(server=kind, env=env, log_path=log_path, options=options) as running:
        yield running.port, psutil.Process(running.pid)


class PeakRss:
    """Sample a process's resident memory every 20 ms while in the block."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.before = proc.memory_info().rss
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth_mb(self) -> float:
        return (self.peak - self.before) / MB


def curl(url: str, token: str, cap: float, rate: str = "") -> subprocess.Popen:
    cmd = ["curl", "-s", "-o", "/dev/null", "-m", str(cap), "-H", f"Authorization: Bearer {token}"]
    if rate:
        cmd += ["--limit-rate", rate]
    cmd += ["-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", url]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


@dataclass
class Result:
    mbps: float
    first_byte_ms: float
    rss_growth_mb: float
    complete: bool


def measure(port, proc, path, token, *, clients: int, cap: float, rate: str = "") -> Result:
    url = f"http://127.0.0.1:{port}{path}"
    with PeakRss(proc) as rss:
        started = time.monotonic()
        runs = [curl(url, token, cap, rate) for _ in range(clients)]
        outputs = [run.communicate()[0].split() for run in runs]
        elapsed = time.monotonic() - started
    statuses = {out[0] for out in outputs}
    if statuses - {"200"}:
        raise RuntimeError(f"unexpected status {statuses} for {path}")
    total = sum(int(out[1]) for out in outputs)
    complete = all(run.returncode == 0 for run in runs)
    first = statistics.median(float(out[2]) for out in outputs) * 1000
    return Result(total / MB / elapsed, first, rss.growth_mb, complete)


def row(cells) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="short caps (smoke run)")
    args = parser.parse_args()
    cap = 4.0 if args.quick else 10.0
    slow_seconds = 6.0 if args.quick else 15.0
    sweep_cap = 1.5 if args.quick else 3.0
    if not shutil.which("curl"):
        sys.exit("curl is needed")
    token, ids = setup()
    product = {label: f"/api/images/{pk}/download" for label, pk in ids.items()}
    baseline = {label: f"/api/bench/seed-image/{pk}" for label, pk in ids.items()}
    ahead = {label: f"/api/bench/read-ahead-image/{pk}" for label, pk in ids.items()}

    print("\n## Chunk size (uvicorn, product view)\n")
    print(
        row(
            ["IMAGE_STREAM_CHUNK_BYTES", "1 GB, 1 client MB/s", "50 MB x 20 clients: RSS growth MB"]
        )
    )
    print(row(["---"] * 3))
    sweep = {}
    for chunk in (64 * 1024, 256 * 1024, 1024 * 1024, 2 * 1024 * 1024, 4 * 1024 * 1024):
        with server("uvicorn", chunk) as (port, proc):
            measure(port, proc, product["50MB"], token, clients=1, cap=cap)  # warm-up
            one = max(
                measure(port, proc, product["1GB"], token, clients=1, cap=sweep_cap).mbps
                for _ in range(2)
            )
            many = measure(port, proc, product["50MB"], token, clients=20, cap=cap)
        sweep[chunk] = one
        print(row([f"{chunk // 1024} KiB", f"{one:.0f}", f"{many.rss_growth_mb:.0f}"]), flush=True)
    # Memory per stream grows with the chunk (two chunks in flight): take the smallest
    # chunk within 10% of the fastest.
    best = max(sweep.values())
    chosen = min(chunk for chunk, speed in sweep.items() if speed >= 0.9 * best)
    print(f"\nchosen: {chosen // 1024} KiB (smallest within 10% of the fastest)")

    print("\n## Downloads\n")
    print(row(["server", "view", "image", "clients", "MB/s", "first byte ms", "RSS growth MB"]))
    print(row(["---"] * 7))
    speeds: dict[tuple[str, str, str, int], float] = {}
    cases = [
        ("seed 4 KiB aiofiles", baseline, "50MB", 1),
        ("seed 4 KiB aiofiles", baseline, "50MB", 20),
        ("seed 4 KiB aiofiles", baseline, "1GB", 1),
        ("product", product, "50MB", 1),
        ("product", product, "50MB", 20),
        ("product", product, "1GB", 1),
        ("product", product, "1GB", 20),
        ("read-ahead of one chunk", ahead, "1GB", 1),
        ("read-ahead of one chunk", ahead, "50MB", 20),
    ]
    slow = {}
    for kind in ("uvicorn", "daphne"):
        with server(kind, chosen) as (port, proc):
            measure(port, proc, product["50MB"], token, clients=1, cap=cap)  # warm-up
            for view, paths, label, clients in cases:
                result = measure(port, proc, paths[label], token, clients=clients, cap=cap)
                speeds[(kind, view, label, clients)] = result.mbps
                mark = "" if result.complete else f" (cut at {cap:.0f} s)"
                print(
                    row(
                        [
                            kind,
                            view,
                            label,
                            clients,
                            f"{result.mbps:.0f}{mark}",
                            f"{result.first_byte_ms:.1f}",
                            f"{result.rss_growth_mb:.1f}",
                        ]
                    ),
                    flush=True,
                )
            slow[kind] = measure(
                port, proc, product["200MB"], token, clients=1, cap=slow_seconds, rate="1M"
            )

    print(f"\n## Slow reader: 1 MB/s on the 200 MB image for {slow_seconds:.0f} s\n")
    print(row(["server", "client MB/s", "server RSS growth MB"]))
    print(row(["---"] * 3))
    for kind, result in slow.items():
        print(row([kind, f"{result.mbps:.2f}", f"{result.rss_growth_mb:.1f}"]))

    print("\n## Product vs seed baseline (same server, same image)\n")
    print(row(["server", "image", "clients", "speed-up"]))
    print(row(["---"] * 4))
    for kind in ("uvicorn", "daphne"):
        for label, clients in (("50MB", 1), ("50MB", 20), ("1GB", 1)):
            ratio = speeds[(kind, "product", label, clients)] / max(
                speeds[(kind, "seed 4 KiB aiofiles", label, clients)], 1e-9
            )
            print(row([kind, label, clients, f"{ratio:.1f}x"]))


if __name__ == "__main__":
    main()
