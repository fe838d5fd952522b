"""Scale-out through `make serve`'s script: SSE and rooms by worker count, downloads.

    .venv/bin/python bench/scaleout.py [--only sse|rooms|downloads] [--workers 1 2 4]

Every stack is started by scripts/serve.py (what `make serve` runs): nginx on a
free port in front of N uvicorn workers over PostgreSQL and Redis, each on its own
database and Redis prefix (testing/stack.py), and stopped afterwards.

SSE: for each worker count, `--subs` EventSource-like subscribers (bench/telemetry.py's
client, one asyncio process) connect through nginx, then frames are ingested through
nginx at each rate for `--seconds`. Every subscriber must get every frame once;
latency is from the ingest POST's start to the subscriber reading `id: <seq>`. The
summary gives the highest deliveries/s whose p99 stayed under 100 ms, and the
workers' CPU per 1,000 deliveries at each rate (the cost a worker adds).

Rooms: for each worker count, `--room-count` rooms of `--members` members (1,000
sockets) connect through nginx from bench/rooms.py's client processes; nginx
hands each socket to whichever worker accepts it on the shared Unix socket, and
the spread is sampled from the workers' open connections. Then bench/rooms.py's
two phases run unchanged: a burst of `--burst` messages back to back into one
room (deliveries / (last receipt - first send)), and `--room-rate` messages/s
over every room for `--room-seconds`; every socket must get every message of its
room exactly once.

Downloads: one 50 MB image (bench/images.py's noise PNG), fetched with curl through
nginx with X-Accel-Redirect (nginx sends it after the worker's access check), with
the worker streaming it (IMAGE_ACCEL_REDIRECT=false), and from nginx directly (the
same bytes under /static/), 1 and 8 clients at a time: the median of `--repeat-one`
(1 client) or `--repeat` rounds after a warm-up, the direct and X-Accel cases
taking turns in each round; "of nginx direct" is the median of the rounds'
X-Accel/direct ratios. A 50 MB download with one client takes ~20 ms and single
rounds' ratios spread widely (p25-p75 60-127% in one run of 41 rounds), so one
client gets 201 rounds (about 15 s): 7 rounds had moved its figure by ±10%.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.test")

from bench import rooms as room_bench  # noqa: E402
from bench.images import MB, curl, measure, write_noise_png  # noqa: E402
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


def cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


async def sse_rates(
    running: ProductionStack, args, workers: list[psutil.Process], nginx: list[psutil.Process]
) -> list[dict]:
    viewer, rover = running.tokens["alice"], running.tokens["rover"]
    subscribers = await connect_all(running.port, STREAM, viewer, args.subs)
    await asyncio.sleep(1)
    rows = []
    first = 1
    try:
        for rate in args.rates:
            cpu_before, nginx_before = cpu_seconds(workers), cpu_seconds(nginx)
            sent = await ingest_from(running.port, rover, rate, args.seconds, first)
            first = max(sent) + 1
            deadline = time.perf_counter() + 10
            while time.perf_counter() < deadline:
                if all(s.received and s.received[-1][0] >= first - 1 for s in subscribers):
                    break
                await asyncio.sleep(0.05)
            cpu = cpu_seconds(workers) - cpu_before
            nginx_cpu = cpu_seconds(nginx) - nginx_before
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
                    # Worker CPU from the first POST until every subscriber had the last frame.
                    "cpu_ms_per_1000": cpu * 1e6 / len(latencies) if latencies else 0.0,
                    "nginx_ms_per_1000": nginx_cpu * 1e6 / len(latencies) if latencies else 0.0,
                }
            )
    finally:
        close_all(subscribers)
    return rows


def sse_part(args) -> list[tuple[int, list[dict]]]:
    results = []
    for workers in args.workers:
        running = stack(workers)
        try:
            processes = [psutil.Process(pid) for pid in running.worker_pids()]
            nginx = [
                psutil.Process(pid)
                for pid in running.all_pids()
                if psutil.Process(pid).name() == "nginx"
            ]
            rows = asyncio.run(sse_rates(running, args, processes, nginx))
        finally:
            running.stop()
        results.append((workers, rows))
    return results


def print_sse(args, sse: list[tuple[int, list[dict]]]) -> None:
    print(f"\nSSE through nginx, {args.subs} subscribers, {args.seconds:g} s per rate\n")
    print(
        "| workers | frames/s offered | deliveries/s | p50 | p99 | lost | dup "
        "| CPU ms per 1,000 deliveries: workers / nginx |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, rows in sse:
        for r in rows:
            print(
                f"| {workers} | {r['rate']:g} | {r['per_s']:,.0f} | {r['p50']:.1f} ms |"
                f" {r['p99']:.1f} ms | {r['lost']} | {r['dup']} |"
                f" {r['cpu_ms_per_1000']:.0f} / {r['nginx_ms_per_1000']:.0f} |"
            )
    print("\n| workers | best deliveries/s with p99 < 100 ms |")
    print("|---:|---:|")
    for workers, rows in sse:
        fine = [r["per_s"] for r in rows if r["p99"] < 100 and not r["lost"]]
        best = f"{max(fine):,.0f}" if fine else "none"
        print(f"| {workers} | {best} |", flush=True)


# Rooms ------------------------------------------------------------------------------

ROOMS_SEED = """
import json
from bench.rooms import seed_rooms
print("ROOMS=" + json.dumps(seed_rooms(%d, %d)))
"""


class StackWorker:
    """One worker of a stack, as bench/rooms.py's measure() sees a server: every socket
    goes to nginx's port, the CPU is the worker's, the log is the stack's."""

    def __init__(self, running: ProductionStack, pid: int) -> None:
        self.port = running.port
        self.pid = pid
        self.log_path = running.log_path


class SpreadSampler(threading.Thread):
    """Samples how many sockets each worker holds; keeps the sample with the most in all."""

    def __init__(self, running: ProductionStack) -> None:
        super().__init__(daemon=True)
        self.running = running
        self.best: dict[int, int] = {}
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(1.0):
            counts = self.running.connections_per_worker()
            if sum(counts.values()) > sum(self.best.values()):
                self.best = counts


def rooms_part(args) -> list[tuple[int, dict, list[int]]]:
    room_args = argparse.Namespace(
        rooms=args.room_count,
        members=args.members,
        rate=args.room_rate,
        duration=args.room_seconds,
        burst=args.burst,
        client_procs=args.client_procs,
    )
    results = []
    for workers in args.workers:
        running = stack(workers)
        try:
            out = running.manage("shell", "-c", ROOMS_SEED % (args.room_count, args.members))
            line = next(line for line in out.splitlines() if line.startswith("ROOMS="))
            rooms = json.loads(line.removeprefix("ROOMS="))
            servers = [StackWorker(running, pid) for pid in sorted(running.worker_pids())]
            if len(servers) == 1:
                servers.append(servers[0])  # measure() alternates sockets over two "servers"
            sampler = SpreadSampler(running)
            sampler.start()
            try:
                figures = room_bench.measure(
                    room_args, rooms, servers, "/ws/comms/{room}/", f"w{workers}"
                )
            finally:
                sampler.halt.set()
                sampler.join()
        finally:
            running.stop()
        results.append((workers, figures, sorted(sampler.best.values(), reverse=True)))
    return results


def print_rooms(args, rooms: list[tuple[int, dict, list[int]]]) -> None:
    offered = args.room_rate * args.members
    print(
        f"\nRooms through nginx: {args.room_count} rooms x {args.members} members; burst "
        f"{args.burst} messages into one room; sustained {args.room_rate:g} msg/s "
        f"({offered:,.0f} deliveries/s offered) for {args.room_seconds:g} s\n"
    )
    print(
        "| workers | sockets per worker | burst deliveries/s | burst p99 "
        "| sustained deliveries/s | sustained p50 | sustained p99 | missing | dup "
        "| worker CPU (cores) | worker CPU ms per 1,000 deliveries | over capacity |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers, figures, spread in rooms:
        burst, steady = figures["burst"], figures["sustained"]
        missing = burst["missing"] + steady["missing"]
        dup = burst["duplicates"] + steady["duplicates"]
        cost = steady["server_cpu"] / steady["rate"] * 1e6 if steady["rate"] else 0.0
        print(
            f"| {workers} | {' / '.join(map(str, spread))} | {burst['rate']:,.0f} "
            f"| {burst['p99']:.0f} ms | {steady['rate']:,.0f} | {steady['p50']:.1f} ms "
            f"| {steady['p99']:.1f} ms | {missing} | {dup} | {steady['server_cpu']:.2f} "
            f"| {cost:.0f} | {figures['over_capacity']} |",
            flush=True,
        )


def upload_image(running: ProductionStack, image: Path) -> str:
    """Upload `image` as the rover; return its download URL."""
    with open(image, "rb") as body:
        upload = httpx.post(
            f"{running.url}/api/rovers/curiosity/images",
            files={"file": (image.name, body, "image/png")},
            headers=running.auth("rover"),
            timeout=120,
        )
    upload.raise_for_status()
    return upload.json()["url"]


@dataclass
class Download:
    mbps: float
    first_byte_ms: float


def one_download(port: int, path: str, token: str, cap: float) -> Download:
    """Fetch `path` once with curl; MB/s by curl's own clock (its process start excluded)."""
    out = curl(f"http://127.0.0.1:{port}{path}", token, cap).communicate()[0].split()
    status, size, first, total = out[0], int(out[1]), float(out[2]), float(out[3])
    if status != "200":
        raise RuntimeError(f"unexpected status {status} for {path}")
    return Download(size / MB / total, first * 1000)


def download_round(running, worker, path: str, token: str, clients: int, cap: float) -> Download:
    if clients == 1:
        return one_download(running.port, path, token, cap)
    many = measure(running.port, worker, path, token, clients=clients, cap=cap)
    return Download(many.mbps, many.first_byte_ms)


def downloads_part(args) -> list[tuple[str, int, float, float, list[float]]]:
    """Return (how, clients, median MB/s, median first-byte ms, per-round ratios) per case.

    One warm-up download per case first (a fresh worker's first request opens its
    database pool); then rounds (`--repeat-one` with one client, `--repeat` with
    more), each fetching every case in turn, so the X-Accel and direct figures of
    a round share the machine's load; each round's X-Accel/direct ratio is kept.
    One client's MB/s is the size over curl's own total time (connect to last
    byte), without the ~7 ms curl takes to start: that start is the client's,
    common to both cases, and only diluted the difference. More clients: all
    bytes over the wall time of the round, curl starts included (bench/images.py).
    """
    WORK.mkdir(parents=True, exist_ok=True)
    image = WORK / "50MB.png"
    if not image.exists():
        write_noise_png(image, 2560)
    rows = []
    for accel in ("true", "false"):
        running = stack(1, IMAGE_ACCEL_REDIRECT=accel)
        try:
            url = upload_image(running, image)
            worker = psutil.Process(next(iter(running.worker_pids())))
            token = running.tokens["alice"]
            if accel == "true":
                direct = Path(running.env()["STATIC_ROOT"]) / "bench-direct"
                direct.mkdir(exist_ok=True)
                shutil.copy(image, direct / "50MB.png")
                cases = [
                    ("nginx serves the file directly", "/static/bench-direct/50MB.png"),
                    ("nginx + X-Accel-Redirect", url),
                ]
            else:
                cases = [("worker streams it", url)]
            try:
                for clients in args.clients:
                    for _name, path in cases:
                        measure(running.port, worker, path, token, clients=1, cap=args.cap)
                    runs: dict[str, list[Download]] = {name: [] for name, _ in cases}
                    for _ in range(args.repeat_one if clients == 1 else args.repeat):
                        for name, path in cases:
                            runs[name].append(
                                download_round(running, worker, path, token, clients, args.cap)
                            )
                    first_name = cases[0][0]
                    for name, results in runs.items():
                        ratios = [
                            r.mbps / d.mbps for r, d in zip(results, runs[first_name], strict=True)
                        ]
                        rows.append(
                            (
                                name,
                                clients,
                                statistics.median(r.mbps for r in results),
                                statistics.median(r.first_byte_ms for r in results),
                                ratios if len(cases) > 1 else [],
                            )
                        )
            finally:
                if accel == "true":
                    # collectstatic of a later stack would otherwise compress 50 MB of noise.
                    shutil.rmtree(direct, ignore_errors=True)
        finally:
            running.stop()
    return rows


def print_downloads(rows: list[tuple[str, int, float, float, list[float]]], args) -> None:
    print(
        f"\nDownloads of a 50 MB image through nginx (curl; median of {args.repeat_one} rounds"
        f" with 1 client, {args.repeat} with more)\n"
    )
    print("| how | clients | MB/s | of nginx direct | (p25-p75 of rounds) | first byte (median) |")
    print("|---|---:|---:|---:|---:|---:|")
    direct = {c: mbps for name, c, mbps, _, _ in rows if name.startswith("nginx serves")}
    for name, clients, mbps, first, ratios in rows:
        if ratios:
            ordered = sorted(ratios)
            share = f"{statistics.median(ratios):.0%}"
            spread = f"{ordered[len(ordered) // 4]:.0%}-{ordered[3 * len(ordered) // 4]:.0%}"
        else:
            share, spread = (f"{mbps / direct[clients]:.0%}" if direct.get(clients) else ""), ""
        print(f"| {name} | {clients} | {mbps:,.0f} | {share} | {spread} | {first:.1f} ms |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--only",
        choices=["sse", "rooms", "downloads"],
        action="append",
        help="run only this part (repeatable); all three by default",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 10, 20, 40])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--room-count", type=int, default=10)
    parser.add_argument("--members", type=int, default=100, help="per room")
    parser.add_argument("--burst", type=int, default=200, help="messages into one room")
    parser.add_argument("--room-rate", type=float, default=100, help="messages/s over all rooms")
    parser.add_argument("--room-seconds", type=float, default=10)
    parser.add_argument("--client-procs", type=int, default=2, help="room client processes")
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--cap", type=float, default=10, help="seconds per curl at most")
    parser.add_argument("--repeat", type=int, default=7, help="download rounds, 2+ clients")
    parser.add_argument("--repeat-one", type=int, default=201, help="download rounds, 1 client")
    args = parser.parse_args()
    parts = args.only or ["sse", "rooms", "downloads"]
    if "sse" in parts:
        print_sse(args, sse_part(args))
    if "rooms" in parts:
        print_rooms(args, rooms_part(args))
    if "downloads" in parts:
        print_downloads(downloads_part(args), args)
    print(f"\n({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
