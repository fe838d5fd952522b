"""First byte of an X-Accel download through `make serve`'s stack, busy and after idling.

    .venv/bin/python bench/download_latency.py [--requests 200] [--gaps 0 30]

One worker behind nginx (scripts/serve.py, production settings, PostgreSQL and
Redis), one stored 50 MB image. Three requests take turns on three keep-alive
connections to nginx, each asking for `Range: bytes=0-0` (so the time is the
answer's, not the transfer's): the same file from nginx directly (/static/),
`/healthz` (the worker without the database), and the image's download URL
(the worker's access check, then nginx sends the byte: X-Accel-Redirect). Each
gap is the pause before every request: 0 ms (back to back) and 30 ms (an idle
worker, as in bench/scaleout.py's one-client downloads, where the worker waits
while nginx sends the previous file). Prints p10/p50/p90 of the time from
sending the request to reading the whole answer.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.test")

from bench.images import write_noise_png  # noqa: E402
from bench.scaleout import WORK, stack, upload_image  # noqa: E402


def answer_ms(sock: socket.socket, path: str, headers: dict[str, str]) -> tuple[float, str]:
    """Send one GET on a keep-alive connection; return (ms until fully read, status line)."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    started = time.perf_counter()
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{lines}\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{path}: connection closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"{path}: connection closed")
        body += chunk
    return (time.perf_counter() - started) * 1000, head.split(b"\r\n")[0].decode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="per case and gap")
    parser.add_argument("--gaps", type=float, nargs="+", default=[0, 30], help="ms")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    image = WORK / "50MB.png"
    if not image.exists():
        write_noise_png(image, 2560)
    running = stack(1, IMAGE_ACCEL_REDIRECT="true")
    direct = Path(running.env()["STATIC_ROOT"]) / "bench-direct"
    try:
        url = upload_image(running, image)
        direct.mkdir(exist_ok=True)
        shutil.copy(image, direct / "50MB.png")
        first_byte = {"Range": "bytes=0-0"}
        cases = {
            "nginx directly": ("/static/bench-direct/50MB.png", first_byte),
            "/healthz": ("/healthz", {}),
            "X-Accel download": (url, {**running.auth("alice"), **first_byte}),
        }
        print("| gap | request | p10 | p50 | p90 |\n|---:|---|---:|---:|---:|")
        for gap in args.gaps:
            socks = {name: socket.create_connection(("127.0.0.1", running.port)) for name in cases}
            times: dict[str, list[float]] = {name: [] for name in cases}
            for _ in range(args.requests):
                for name, (path, headers) in cases.items():
                    time.sleep(gap / 1000)
                    ms, status = answer_ms(socks[name], path, headers)
                    if " 20" not in status:
                        raise RuntimeError(f"{name}: {status}")
                    times[name].append(ms)
            for sock in socks.values():
                sock.close()
            for name, values in times.items():
                values.sort()
                p10, p90 = values[len(values) // 10], values[9 * len(values) // 10]
                print(
                    f"| {gap:g} ms | {name} | {p10:.2f} ms | {statistics.median(values):.2f} ms "
                    f"| {p90:.2f} ms |"
                )
    finally:
        shutil.rmtree(direct, ignore_errors=True)
        running.stop()
    print(f"\n({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
