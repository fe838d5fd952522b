"""Scale-out on this machine, through `make serve`'s script: SSE fan-out by worker count, downloads.

    .venv/bin/python bench/scaleout.py [--workers 1 2 4] [--subs 1000] [--rates 10 20 40 80]

Every stack is started by scripts/serve.py (what `make serve` runs): nginx on a
free port in front of N uvicorn workers over PostgreSQL and Redis, each on its own
database and Redis prefix (testing/stack.py), and stopped afterwards.

SSE: for each worker count, `--subs` EventSource-like subscribers (bench/telemetry.py's
client, one asyncio process) connect through nginx, then frames are ingested through
nginx at each rate for `--seconds`. Every subscriber must get every frame once;
latency is from the ingest POST's start to the subscriber reading `id: <seq>`. The
summary gives the highest deliveries/s whose p99 stayed under 100 ms.

Downloads: one 50 MB image (bench/images.py's noise PNG), fetched with curl through
nginx with X-Accel-Redirect (nginx sends it after the worker's access check), with
the worker streaming it (IMAGE_ACCEL_REDIRECT=false), and from nginx directly (the
same bytes under /static/), 1 and 8 clients at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.test")

from bench.images import measure, write_noise_png  # noqa: E402
from bench.sse_client import close_all, connect_all  # noqa: E402
from testing.stack import ProductionStack  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
STREAM = "/rovers/curiosity/telemetry/stream"
INGEST = "/api/rovers/curiosity/telemetry"
WORK = Path("/tmp/mc-bench-scaleout")


def stack(workers: int, **env: str) -> ProductionStack:
    return ProductionStack(
        postgres_url=POSTGRES,
        redis_url=REDIS,
        workers=workers,
        STATIC_ROOT=str(WORK / "static"),
        DATABASE_POOL_MAX="10",
        ALARM_WATCHDOG_SECONDS="0",
        **env,
    ).start()


async def ingest_from(port: int, token: str, rate: float, seconds: float, first: int):
    """POST one frame every 1/rate s from seq `first` on; return {seq: perf_counter at POST}."""
    sent: dict[int, float] = {}
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.perf_counter()
        for n in range(int(rate * seconds)):
            delay = start + n / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            seq = first + n
            sent[seq] = time.perf_counter()
            response = await client.post(
                f"http://127.0.0.1:{port}{INGEST}",
                json={
                    "seq": seq,
                    "recorded_at": datetime.now(UTC).isoformat(),
                    "battery_pct": 80.0,
                    "signal_dbm": -90.0,
                    "mode": "driving",
                },
            )
            if response.status_code != 201:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text}")
    return sent


async def sse_rates(running: ProductionStack, args) -> list[dict]:
    viewer, rover = running.tokens["alice"], running.tokens["rover"]
    subscribers = await connect_all(running.port, STREAM, viewer, args.subs)
    await asyncio.sleep(1)
    rows = []
    first = 1
    try:
        for rate in args.rates:
            sent = await ingest_from(running.port, rover, rate, args.seconds, first)
            first = max(sent) + 1
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline:
                if all(s.received and s.received[-1][0] >= first - 1 for s in subscribers):
                    break
                await asyncio.sleep(0.05)
            latencies, lost, dup, last_at = [], 0, 0, 0.0
            for sub in subscribers:
                seqs = [seq for seq, _ in sub.received if seq in sent]
                lost += len(set(sent) - set(seqs))
                dup += len(seqs) - len(set(seqs))
                for seq, at in sub.received:
                    if seq in sent:
                        latencies.append((at - sent[seq]) * 1000)
                        last_at = max(last_at, at)
            latencies.sort()
            span = last_at - min(sent.values())
            rows.append(
                {
                    "rate": rate,
                    "per_s": len(latencies) / span if span > 0 else 0.0,
                    "p50": statistics.median(latencies),
                    "p99": latencies[int(len(latencies) * 0.99) - 1],
                    "lost": lost,
                    "dup": dup,
                }
            )
    finally:
        close_all(subscribers)
    return rows


def sse_part(args) -> list[tuple[int, list[dict], float]]:
    results = []
    for workers in args.workers:
        running = stack(workers)
        try:
            workers_now = [psutil.Process(pid) for pid in running.worker_pids()]
            cpu_before = sum(sum(p.cpu_times()[:2]) for p in workers_now)
            started = time.perf_counter()
            rows = asyncio.run(sse_rates(running, args))
            cpu = sum(sum(p.cpu_times()[:2]) for p in workers_now)
            cores = (cpu - cpu_before) / (time.perf_counter() - started)
        finally:
            running.stop()
        results.append((workers, rows, cores))
    return results


def downloads_part(args) -> list[tuple[str, int, float]]:
    WORK.mkdir(parents=True, exist_ok=True)
    image = WORK / "50MB.png"
    if not image.exists():
        write_noise_png(image, 2560)
    rows = []
    for accel in ("true", "false"):
        running = stack(1, IMAGE_ACCEL_REDIRECT=accel)
        try:
            with open(image, "rb") as body:
                upload = httpx.post(
                    f"{running.url}/api/rovers/curiosity/images",
                    files={"file": ("50MB.png", body, "image/png")},
                    headers=running.auth("rover"),
                    timeout=120,
                )
            upload.raise_for_status()
            path = upload.json()["url"]
            worker = psutil.Process(next(iter(running.worker_pids())))
            token = running.tokens["alice"]
            name = "nginx + X-Accel-Redirect" if accel == "true" else "worker streams it"
            if accel == "true":
                direct = Path(running.env()["STATIC_ROOT"]) / "bench-direct"
                direct.mkdir(exist_ok=True)
                shutil.copy(image, direct / "50MB.png")
            for clients in args.clients:
                result = measure(running.port, worker, path, token, clients=clients, cap=args.cap)
                rows.append((name, clients, result.mbps))
                if accel == "true":
                    result = measure(
                        running.port,
                        worker,
                        "/static/bench-direct/50MB.png",
                        token,
                        clients=clients,
                        cap=args.cap,
                    )
                    rows.append(("nginx serves the file directly", clients, result.mbps))
        finally:
            running.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rates", type=float, nargs="+", default=[10, 20, 40])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cap", type=float, default=10, help="seconds per curl at most")
    parser.add_argument("--skip-sse", action="store_true")
    parser.add_argument("--skip-downloads", action="store_true")
    args = parser.parse_args()
    sse = [] if args.skip_sse else sse_part(args)
    if sse:
        print(f"\nSSE through nginx, {args.subs} subscribers, {args.seconds:g} s per rate\n")
        print("| workers | frames/s offered | deliveries/s | p50 | p99 | lost | dup |")
        print("|---:|---:|---:|---:|---:|---:|---:|")
        for workers, rows, _cores in sse:
            for r in rows:
                print(
                    f"| {workers} | {r['rate']:g} | {r['per_s']:,.0f} | {r['p50']:.1f} ms |"
                    f" {r['p99']:.1f} ms | {r['lost']} | {r['dup']} |"
                )
        print("\n| workers | best deliveries/s with p99 < 100 ms | worker CPU (cores) |")
        print("|---:|---:|---:|")
        for workers, rows, cores in sse:
            fine = [r["per_s"] for r in rows if r["p99"] < 100 and not r["lost"]]
            best = f"{max(fine):,.0f}" if fine else "none"
            print(f"| {workers} | {best} | {cores:.2f} |", flush=True)
    downloads = [] if args.skip_downloads else downloads_part(args)
    if downloads:
        print("\nDownloads of a 50 MB image through nginx (curl, MB/s)\n")
        print("| how | clients | MB/s |")
        print("|---|---:|---:|")
        for name, clients, mbps in downloads:
            print(f"| {name} | {clients} | {mbps:,.0f} |")
    print(f"\n({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
