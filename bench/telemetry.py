"""Live telemetry under load: the per-process hub against the naive design, same run.

    .venv/bin/python bench/telemetry.py            # 1,000 subs @ 10 Hz, 20 s; 5,000 idle

Creates the PostgreSQL database mc_bench_telemetry (dropped first), and for each
phase starts ONE worker (uvicorn; `--server` picks another of bench/common.py's
SERVER_CONFIGS) with production settings over real Redis
(DJANGO_SETTINGS_MODULE=bench.telemetry_settings: production plus the naive view):

1. hub: `subs` SSE subscribers on `/rovers/curiosity/telemetry/stream` (the
   product), all connected (each has read `retry:`, sent once it is subscribed)
   before the first frame; then frames are POSTed to the ingest API at `rate` Hz
   for `duration` s, then one burst: `burst` frames in one POST (throughput =
   deliveries / (last receipt - POST start)). Every subscriber must receive every
   seq exactly once;
   latency is POST start (the ingester's clock) to receipt of `id: <seq>` at the
   subscriber, same process, same clock (the SSE id is the ingest id, which equals
   the seq here: frames arrive in order from seq 1 and each phase resets the
   rover's counter). Deliveries/s = deliveries / (last
   receipt - first POST). RSS per subscriber = server RSS with the subscribers
   connected minus RSS before (after a warm-up), divided by `subs`.
2. naive: the same load on the naive view (bench/telemetry_urls.py: one
   channel-layer group member per response).
3. idle: `idle` subscribers on the product URL with no frames; RSS per idle
   subscriber as above. The open-file limit is raised to the hard limit.

The client is one process of asyncio Protocols (no per-connection task, one
regex over each complete chunk), since clients and server share 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    PG,
    SERVER_CONFIGS,
    ServerTree,
    bench_server,
    production_env,
    recreate_database,
)
from testing.servers import ServerProcess  # noqa: E402

PYTHON = sys.executable
DB_NAME = "mc_bench_telemetry"
LOG_DIR = Path("/tmp/mc-bench-telemetry")
ID_LINE = re.compile(rb"(?m)^id: (\d+)\r?$")
PRODUCT_PATH = "/rovers/curiosity/telemetry/stream"
PRODUCT_INGEST = "/api/rovers/curiosity/telemetry"
NAIVE_PATH = "/api/bench/naive/rovers/curiosity/telemetry/stream"
NAIVE_INGEST = "/api/bench/naive/rovers/curiosity/telemetry"


def server_env(args) -> dict[str, str]:
    return production_env(
        settings_module="bench.telemetry_settings",
        database=DB_NAME,
        REDIS_URL=args.redis_url,
        CHANNEL_LAYER_PREFIX=f"mcbenchtele{os.getpid()}",
        LOG_LEVEL="WARNING",
    )


def prepare_database(args) -> tuple[str, str]:
    """Create and migrate the bench database; return (ingest token, viewer token)."""
    recreate_database(DB_NAME)
    env = server_env(args)
    for command in (["migrate", "--noinput", "-v", "0"], ["seed_demo"]):
        subprocess.run(
            [PYTHON, "manage.py", *command], cwd=ROOT, env=env, check=True, capture_output=True
        )
    script = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from django.contrib.auth.models import Permission\n"
        "from accounts.services import token_create\n"
        "U = get_user_model()\n"
        "rover = U.objects.create_user('bench-rover')\n"
        "rover.user_permissions.add(Permission.objects.get(codename='add_telemetryframe'))\n"
        "viewer = U.objects.create_user('bench-viewer')\n"
        "print(json.dumps([token_create(user=rover)[1], token_create(user=viewer)[1]]))\n"
    )
    out = subprocess.run(
        [PYTHON, "manage.py", "shell", "-c", script],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    ingest, viewer = json.loads(out.stdout.strip().splitlines()[-1])
    return ingest, viewer


def reset_frames(args) -> None:
    subprocess.run(
        [
            "psql",
            *PG,
            "-q",
            "-d",
            DB_NAME,
            "-c",
            "TRUNCATE rover_telemetryframe, rover_alarm; UPDATE rover_rover SET last_ingest_id = 0",
        ],
        check=True,
    )


def start_server(args, name: str) -> ServerProcess:
    """Start one worker (`--server`, uvicorn by default) with production settings.

    Its log is LOG_DIR/server-<name>.log.
    """
    return bench_server(
        args.server, env=server_env(args), log_path=LOG_DIR / f"server-{name}.log"
    ).start()


class SSESubscriber(asyncio.Protocol):
    """A minimal SSE client: records (seq, receipt time) for each `id:` line."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.ready = asyncio.get_running_loop().create_future()
        self.headers_done = False
        self.received: list[tuple[int, float]] = []
        self.overflowed = False
        self.lost = False

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"connection lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        buffer = self.buffer + data
        if not self.headers_done:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buffer
                return
            status = buffer[: buffer.find(b"\r\n")]
            if b" 200 " not in status:
                self.ready.set_exception(ConnectionError(status.decode()))
                return
            self.headers_done = True
            buffer = buffer[end + 4 :]
        cut = buffer.rfind(b"\n\n")
        if cut < 0:
            self.buffer = buffer
            return
        complete, self.buffer = buffer[: cut + 2], buffer[cut + 2 :]
        if not self.ready.done() and b"retry: " in complete:
            self.ready.set_result(None)
        for match in ID_LINE.finditer(complete):
            self.on_id(int(match.group(1)), now)
        if b"event: overflow" in complete:
            self.overflowed = True

    def on_id(self, event_id: int, now: float) -> None:
        """Record an event id and its receipt time (bench/soak.py counts instead of keeping)."""
        self.received.append((event_id, now))


async def connect_all(port: int, path: str, token: str, count: int) -> list[SSESubscriber]:
    loop = asyncio.get_running_loop()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n"
        f"Authorization: Bearer {token}\r\n\r\n"
    ).encode()
    # Few at a time: each connect holds a database connection until it streams.
    limit = asyncio.Semaphore(20)
    subscribers: list[SSESubscriber] = []

    async def one() -> None:
        async with limit:
            _, protocol = await loop.create_connection(
                lambda: SSESubscriber(request), "127.0.0.1", port
            )
            subscribers.append(protocol)
            await asyncio.wait_for(protocol.ready, 60)

    await asyncio.gather(*(one() for _ in range(count)))
    return subscribers


def close_all(subscribers: list[SSESubscriber]) -> None:
    for sub in subscribers:
        if sub.transport is not None:
            sub.transport.close()


async def ingest(
    port: int, path: str, token: str, rate: float, duration: float
) -> dict[int, float]:
    """POST one frame every 1/rate s; return {seq: perf_counter at POST start}."""
    sent: dict[int, float] = {}
    url = f"http://127.0.0.1:{port}{path}"
    frames = int(rate * duration)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.perf_counter()
        for seq in range(1, frames + 1):
            delay = start + (seq - 1) / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            frame = {
                "seq": seq,
                "recorded_at": datetime.now(UTC).isoformat(),
                "battery_pct": 80.0,
                "signal_dbm": -90.0,
                "temp_internal_c": 10.0,
                "x_m": seq * 0.1,
                "y_m": 0.0,
                "heading_deg": 90.0,
                "speed_mps": 1.0,
                "mode": "driving",
            }
            sent[seq] = time.perf_counter()
            response = await client.post(url, json=frame)
            if response.status_code != 201:
                raise RuntimeError(f"ingest answered {response.status_code}: {response.text}")
    return sent


def rss(proc: ServerTree) -> int:
    return proc.memory_info().rss


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def live_phase(args, tokens: tuple[str, str], name: str, path: str, ingest_path: str) -> dict:
    reset_frames(args)
    server_process = start_server(args, name)
    port = server_process.port
    server = ServerTree(server_process.pid)
    ingest_token, viewer_token = tokens
    try:
        warm = await connect_all(port, path, viewer_token, 20)
        close_all(warm)
        await settle(1.5)
        before = rss(server)
        subscribers = await connect_all(port, path, viewer_token, args.subs)
        await settle(1.5)
        connected = rss(server)
        cpu_before = server.cpu_times()
        wall_before = time.perf_counter()
        sent = await ingest(port, ingest_path, ingest_token, args.rate, args.duration)
        last_seq = max(sent)
        deadline = time.perf_counter() + args.drain
        while time.perf_counter() < deadline:
            if all(s.received and s.received[-1][0] >= last_seq for s in subscribers):
                break
            await asyncio.sleep(0.1)
        cpu_after = server.cpu_times()
        wall = time.perf_counter() - wall_before
        burst = await burst_phase(port, ingest_path, ingest_token, subscribers, last_seq, args)
        close_all(subscribers)
    finally:
        server_process.stop(timeout=15)
    latencies: list[float] = []
    lost = duplicates = 0
    last_receipt = 0.0
    expected = set(sent)
    for sub in subscribers:
        seqs = [seq for seq, _ in sub.received]
        got = set(seqs)
        lost += len(expected - got)
        duplicates += len(seqs) - len(got)
        for seq, at in sub.received:
            if seq in sent:
                latencies.append((at - sent[seq]) * 1000)
                last_receipt = max(last_receipt, at)
    latencies.sort()
    deliveries = len(latencies)
    span = (last_receipt - min(sent.values())) if deliveries else float("nan")
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100
    return {
        "name": name,
        "subs": args.subs,
        "frames": len(sent),
        "deliveries": deliveries,
        "expected": len(sent) * args.subs,
        "lost": lost,
        "duplicates": duplicates,
        "overflowed": sum(s.overflowed for s in subscribers),
        "per_s": deliveries / span if deliveries else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "kib_per_sub": (connected - before) / args.subs / 1024,
        "cpu": cpu,
        "burst_per_s": burst,
    }


async def burst_phase(
    port: int, path: str, token: str, subscribers: list, after: int, args
) -> float:
    """POST `burst` frames in one batch; return deliveries/s until every subscriber has them."""
    first, last = after + 1, after + args.burst
    frames = [
        {
            "seq": seq,
            "recorded_at": datetime.now(UTC).isoformat(),
            "battery_pct": 80.0,
            "signal_dbm": -90.0,
            "mode": "driving",
        }
        for seq in range(first, last + 1)
    ]
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        started = time.perf_counter()
        response = await client.post(f"http://127.0.0.1:{port}{path}", json=frames, timeout=60)
        assert response.status_code == 201, response.text
    deadline = time.perf_counter() + args.drain
    while time.perf_counter() < deadline:
        if all(s.received and s.received[-1][0] >= last for s in subscribers):
            break
        await asyncio.sleep(0.05)
    got = [(seq, at) for s in subscribers for seq, at in s.received if first <= seq <= last]
    if not got:
        return 0.0
    return len(got) / (max(at for _, at in got) - started)


async def idle_phase(args, tokens: tuple[str, str]) -> dict:
    reset_frames(args)
    server_process = start_server(args, "idle")
    port = server_process.port
    server = ServerTree(server_process.pid)
    try:
        warm = await connect_all(port, PRODUCT_PATH, tokens[1], 20)
        close_all(warm)
        await settle(1.5)
        before = rss(server)
        started = time.perf_counter()
        subscribers = await connect_all(port, PRODUCT_PATH, tokens[1], args.idle)
        connect_s = time.perf_counter() - started
        await settle(2.0)
        after = rss(server)
        threads = server.num_threads()
        alive = sum(not s.lost for s in subscribers)
        close_all(subscribers)
    finally:
        server_process.stop(timeout=15)
    return {
        "idle": args.idle,
        "alive": alive,
        "connect_s": connect_s,
        "kib_per_sub": (after - before) / args.idle / 1024,
        "rss_mib": after / 2**20,
        "threads": threads,
    }


def print_report(args, live: list[dict], idle: dict | None) -> None:
    print()
    print(
        f"Live telemetry: {args.subs} SSE subscribers on one {args.server} worker, "
        f"{args.rate:g} Hz for {args.duration:g} s (PostgreSQL, Redis, production settings)"
    )
    print()
    header = (
        "| design | deliveries/s | delivered / expected | lost | dup | cut off | "
        "p50 ms | p99 ms | max ms | server CPU | RSS/sub KiB |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in live:
        print(
            f"| {r['name']} | {r['per_s']:,.0f} | {r['deliveries']:,} / {r['expected']:,} | "
            f"{r['lost']:,} | {r['duplicates']} | {r['overflowed']} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['cpu']:.0f}% | {r['kib_per_sub']:.1f} |"
        )
    print()
    print(
        f"Burst ({args.burst} frames in one POST, {args.burst * args.subs:,} deliveries): "
        + ", ".join(f"{r['name']} {r['burst_per_s']:,.0f} deliveries/s" for r in live)
    )
    if len(live) == 2 and live[1]["per_s"] and live[1]["burst_per_s"]:
        print(
            f"hub / naive deliveries per second: {live[0]['per_s'] / live[1]['per_s']:.2f}x "
            f"at {args.rate:g} Hz, {live[0]['burst_per_s'] / live[1]['burst_per_s']:.2f}x "
            "in the burst"
        )
    if idle:
        print()
        print(
            f"Idle: {idle['alive']:,} of {idle['idle']:,} subscribers connected in "
            f"{idle['connect_s']:.1f} s; {idle['kib_per_sub']:.1f} KiB RSS per idle subscriber "
            f"(server RSS {idle['rss_mib']:.0f} MiB, {idle['threads']} threads)"
        )


async def main_async(args) -> None:
    tokens = prepare_database(args)
    live = [await live_phase(args, tokens, "hub (product)", PRODUCT_PATH, PRODUCT_INGEST)]
    if not args.skip_naive:
        live.append(
            await live_phase(args, tokens, "naive (member per response)", NAIVE_PATH, NAIVE_INGEST)
        )
    idle = await idle_phase(args, tokens) if args.idle else None
    print_report(args, live, idle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=30.0, help="max wait after the last POST")
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--burst", type=int, default=50, help="frames in the burst POST")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--server", choices=sorted(SERVER_CONFIGS), default="uvicorn")
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
