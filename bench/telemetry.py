"""Live telemetry under load: the per-process hub against the naive design, same run.

    .venv/bin/python bench/telemetry.py            # 1,000 subs @ 10 Hz, 20 s; 5,000 idle

Creates the PostgreSQL database mc_bench_telemetry_<pid> (dropped at exit, as are
its Redis keys, prefix mcbenchtele<pid>), and for each
phase starts ONE worker (uvicorn; `--server` picks another of bench/common.py's
SERVER_CONFIGS) with production settings over real Redis
(DJANGO_SETTINGS_MODULE=bench.telemetry_settings: production plus the naive view):

1. hub: `subs` SSE subscribers on `/rovers/curiosity/telemetry/stream` (the
   product), all connected (each has read `retry:`, sent once it is subscribed)
   before the first frame; then `warmup` frames are POSTed at `rate` Hz and
   delivered (the worker's first ingests are cold: reported on their own line,
   not in the table), then frames are POSTed to the ingest API at `rate` Hz
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

`--probe` also stamps each ingest's steps inside the worker
(bench/telemetry_probe.py) and prints where a frame's milliseconds go, from the
POST's start to the last subscriber's receipt, all on CLOCK_MONOTONIC.

The client is one process of asyncio Protocols (no per-connection task, one
regex over each complete chunk), since clients and server share 2 cores.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import redis

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
from bench.sse_client import ClientPool, close_all, connect_all  # noqa: E402
from testing.servers import ServerProcess  # noqa: E402

PYTHON = sys.executable
# Per run, so two runs at once do not drop each other's database or share Redis keys.
DB_NAME = f"mc_bench_telemetry_{os.getpid()}"
KEY_PREFIX = f"mcbenchtele{os.getpid()}"
LOG_DIR = Path("/tmp/mc-bench-telemetry")
PRODUCT_PATH = "/rovers/curiosity/telemetry/stream"
PRODUCT_INGEST = "/api/rovers/curiosity/telemetry"
NAIVE_PATH = "/api/bench/naive/rovers/curiosity/telemetry/stream"
NAIVE_INGEST = "/api/bench/naive/rovers/curiosity/telemetry"


def server_env(args) -> dict[str, str]:
    return production_env(
        settings_module="bench.telemetry_settings",
        database=DB_NAME,
        REDIS_URL=args.redis_url,
        CHANNEL_LAYER_PREFIX=KEY_PREFIX,
        LOG_LEVEL="WARNING",
        MC_BENCH_PROBE="1" if args.probe else "0",
    )


def clean_up(args) -> None:
    """Drop this run's database and delete its Redis keys (the hub's counters never expire)."""
    subprocess.run(["dropdb", *PG, "--if-exists", DB_NAME], check=False)
    client = redis.Redis.from_url(args.redis_url)
    try:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


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


def start_server(args, name: str, server: str = "") -> ServerProcess:
    """Start one worker with production settings; its log is LOG_DIR/server-<name>.log.

    `server` is a SERVER_CONFIGS name (`--server`, uvicorn by default) or `daphne`
    (runserver's server, measured for the idle memory only).
    """
    server = server or args.server
    log_path = LOG_DIR / f"server-{name}.log"
    if server in SERVER_CONFIGS:
        return bench_server(server, env=server_env(args), log_path=log_path).start()
    return ServerProcess(server=server, env=server_env(args), log_path=log_path).start()


async def collected_rss(port: int, proc: ServerTree) -> int:
    """Return the worker's RSS right after it collected its garbage (bench-only view)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/api/bench/memory", timeout=60)
        response.raise_for_status()
    return proc.memory_info().rss


async def ingest(
    port: int, path: str, token: str, rate: float, first: int, frames: int
) -> dict[int, float]:
    """POST frames `first`, `first` + 1, ... one every 1/rate s; return {seq: POST start}."""
    sent: dict[int, float] = {}
    url = f"http://127.0.0.1:{port}{path}"
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}) as client:
        start = time.perf_counter()
        for seq in range(first, first + frames):
            delay = start + (seq - first) / rate - time.perf_counter()
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


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def live_phase(
    args, tokens: tuple[str, str], name: str, path: str, ingest_path: str, procs: int
) -> dict:
    reset_frames(args)
    server_process = start_server(args, name)
    port = server_process.port
    server = ServerTree(server_process.pid)
    ingest_token, viewer_token = tokens
    try:
        warm = await connect_all(port, path, viewer_token, 20)
        close_all(warm)
        await settle(1.5)
        before = await collected_rss(port, server)
        pool = ClientPool(
            port=port, path=path, token=viewer_token, count=args.subs, processes=procs
        )
        await pool.ready()
        await settle(1.5)
        connected = await collected_rss(port, server)
        # The worker's first ingests are cold (its database connections, first
        # queries, code paths): measured, delivered and reported apart, not counted.
        warm_sent = await ingest(port, ingest_path, ingest_token, args.rate, 1, args.warmup)
        if warm_sent:
            await pool.wait_for(max(warm_sent), args.drain)
        cpu_before = server.cpu_times()
        client_before = pool.cpu_seconds()
        wall_before = time.perf_counter()
        sent = await ingest(
            port,
            ingest_path,
            ingest_token,
            args.rate,
            args.warmup + 1,
            int(args.rate * args.duration),
        )
        last_seq = max(sent)
        await pool.wait_for(last_seq, args.drain)
        cpu_after = server.cpu_times()
        client_cpu = pool.cpu_seconds() - client_before
        wall = time.perf_counter() - wall_before
        results = await pool.results()
        probe = await probe_records(port) if args.probe else {}
        burst = await burst_phase(port, ingest_path, ingest_token, pool, last_seq, args)
        await pool.close()
    finally:
        server_process.stop(timeout=15)
    warm_latencies = sorted(
        (at - warm_sent[seq]) * 1000
        for received in results.received
        for seq, at in received
        if seq in warm_sent
    )
    warm_lost = warm_dup = 0
    for received in results.received:
        seqs = [seq for seq, _ in received if seq in warm_sent]
        warm_lost += len(set(warm_sent) - set(seqs))
        warm_dup += len(seqs) - len(set(seqs))
    latencies: list[float] = []
    lost = duplicates = 0
    last_receipt = 0.0
    expected = set(sent)
    for received in results.received:
        seqs = [seq for seq, _ in received if seq in expected]
        got = set(seqs)
        lost += len(expected - got)
        duplicates += len(seqs) - len(got)
        for seq, at in received:
            if seq in sent:
                latencies.append((at - sent[seq]) * 1000)
                last_receipt = max(last_receipt, at)
    latencies.sort()
    deliveries = len(latencies)
    span = (last_receipt - min(sent.values())) if deliveries else float("nan")
    cpu = (cpu_after.user + cpu_after.system - cpu_before.user - cpu_before.system) / wall * 100
    return {
        "name": name,
        "procs": procs,
        "subs": args.subs,
        "frames": len(sent),
        "deliveries": deliveries,
        "expected": len(sent) * args.subs,
        "lost": lost,
        "duplicates": duplicates,
        "overflowed": results.overflowed,
        "per_s": deliveries / span if deliveries else 0.0,
        "p50": statistics.median(latencies) if latencies else float("nan"),
        "p99": latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        "max": latencies[-1] if latencies else float("nan"),
        "kib_per_sub": (connected - before) / args.subs / 1024,
        "cpu": cpu,
        "client_cpu": client_cpu / wall * 100,
        "burst_per_s": burst,
        "breakdown": breakdown(sent, results.received, probe) if probe else [],
        "warm": {
            "frames": len(warm_sent),
            "lost": warm_lost,
            "dup": warm_dup,
            "first": [
                (at - warm_sent[seq]) * 1000
                for received in results.received
                for seq, at in received
                if seq == 1 and seq in warm_sent
            ],
            "p50": statistics.median(warm_latencies) if warm_latencies else float("nan"),
            "max": warm_latencies[-1] if warm_latencies else float("nan"),
        },
    }


async def probe_records(port: int) -> dict[int, dict[str, float]]:
    """Return bench/telemetry_probe.py's stamps in the worker, by ingest id (= seq here)."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/api/bench/probe", timeout=60)
        response.raise_for_status()
    return {int(key): value for key, value in response.json().items()}


PROBE_STEPS = (
    ("begin", "request parsed by uvicorn (client, loopback, loop wake-up)"),
    ("token", "token's user read (handler, middleware, thread, query)"),
    ("view", "view entered (rest of the middleware)"),
    ("thread", "request's thread runs the ingest (sync_to_async hop)"),
    ("perm", "permission checked (query)"),
    ("rover", "rover read (query)"),
    ("valid", "body parsed, frames validated"),
    ("store", "store entered"),
    ("ids", "ingest ids taken, rover row locked (query)"),
    ("known", "stored seqs read (query)"),
    ("rollups", "frame inserted (query)"),
    ("rolled", "rollups upserted"),
    ("committed", "committed"),
    ("published", "publish starts (back on the loop)"),
    ("answered", "publish answered by Redis"),
    ("dispatch", "hub starts writing the streams"),
    ("first_read", "first subscriber reads it"),
    ("median_read", "median subscriber reads it"),
    ("written", "hub has written 1,000 streams"),
    ("last_read", "last subscriber reads it"),
    ("alarms", "alarms evaluated"),
    ("response", "view returns"),
)


def breakdown(
    sent: dict[int, float], received: list[list[tuple[int, float]]], probe: dict
) -> list[tuple[str, float, float, float]]:
    """Return (step, median, p99, median of the step's own share) in ms after POST start."""
    reads: dict[int, list[float]] = {}
    for subscriber in received:
        for seq, at in subscriber:
            reads.setdefault(seq, []).append(at)
    rows: dict[str, list[float]] = {name: [] for name, _ in PROBE_STEPS}
    deltas: dict[str, list[float]] = {name: [] for name, _ in PROBE_STEPS}
    for seq, start in sent.items():
        stamps = dict(probe.get(seq) or {})
        times = sorted(reads.get(seq, ()))
        if not times or "dispatch" not in stamps:
            continue
        stamps.update(first_read=times[0], median_read=times[len(times) // 2], last_read=times[-1])
        previous = start
        for name, _ in PROBE_STEPS:
            if stamps.get(name) is None:
                continue
            rows[name].append((stamps[name] - start) * 1000)
            deltas[name].append((stamps[name] - previous) * 1000)
            previous = stamps[name]
    table = []
    for name, label in PROBE_STEPS:
        values = sorted(rows[name])
        if values:
            p99 = values[max(0, int(len(values) * 0.99) - 1)]
            table.append((label, statistics.median(values), p99, statistics.median(deltas[name])))
    return table


async def burst_phase(
    port: int, path: str, token: str, pool: ClientPool, after: int, args
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
    await pool.wait_for(last, args.drain)
    results = await pool.results()
    got = [at for received in results.received for seq, at in received if first <= seq <= last]
    if not got:
        return 0.0
    return len(got) / (max(got) - started)


async def idle_phase(args, tokens: tuple[str, str], server_name: str) -> dict:
    """Open `idle` streams that receive nothing; RSS per stream after a collection."""
    reset_frames(args)
    server_process = start_server(args, f"idle-{server_name}", server=server_name)
    port = server_process.port
    server = ServerTree(server_process.pid)
    try:
        warm = await connect_all(port, PRODUCT_PATH, tokens[1], 20)
        close_all(warm)
        await settle(1.5)
        before = await collected_rss(port, server)
        started = time.perf_counter()
        pool = ClientPool(
            port=port, path=PRODUCT_PATH, token=tokens[1], count=args.idle, processes=1
        )
        await pool.ready()
        connect_s = time.perf_counter() - started
        await settle(2.0)
        after = await collected_rss(port, server)
        threads = server.num_threads()
        alive = (await pool.results()).alive
        await pool.close()
    finally:
        server_process.stop(timeout=15)
    return {
        "server": server_name,
        "idle": args.idle,
        "alive": alive,
        "connect_s": connect_s,
        "kib_per_sub": (after - before) / args.idle / 1024,
        "rss_mib": after / 2**20,
        "threads": threads,
    }


def print_report(args, live: list[dict], idle: list[dict]) -> None:
    print()
    print(
        f"Live telemetry: {args.subs} SSE subscribers on one {args.server} worker, "
        f"{args.rate:g} Hz for {args.duration:g} s (PostgreSQL, Redis, production settings)"
    )
    print()
    header = (
        "| design | client procs | deliveries/s | delivered / expected | lost | dup | cut off | "
        "p50 ms | p99 ms | max ms | server CPU | client CPU | RSS/sub KiB |"
    )
    print(header)
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in live:
        print(
            f"| {r['name']} | {r['procs']} | {r['per_s']:,.0f} | "
            f"{r['deliveries']:,} / {r['expected']:,} | "
            f"{r['lost']:,} | {r['duplicates']} | {r['overflowed']} | {r['p50']:.1f} | "
            f"{r['p99']:.1f} | {r['max']:.1f} | {r['cpu']:.0f}% | {r['client_cpu']:.0f}% | "
            f"{r['kib_per_sub']:.1f} |"
        )
    print()
    print(
        f"Burst ({args.burst} frames in one POST, {args.burst * args.subs:,} deliveries): "
        + ", ".join(f"{r['name']} {r['burst_per_s']:,.0f} deliveries/s" for r in live)
    )
    for r in live:
        warm = r["warm"]
        if warm["frames"]:
            first = sorted(warm["first"])
            print(
                f"Warm-up ({r['name']}, {r['procs']} client process(es), not in the table): "
                f"{warm['frames']} frames at {args.rate:g} Hz, lost {warm['lost']}, "
                f"dup {warm['dup']}, p50 {warm['p50']:.1f} ms, max {warm['max']:.1f} ms; "
                f"the worker's first frame: median {statistics.median(first):.1f} ms, "
                f"max {first[-1]:.1f} ms"
            )
    for r in idle:
        print(
            f"Idle ({r['server']}): {r['alive']:,} of {r['idle']:,} subscribers connected in "
            f"{r['connect_s']:.1f} s; {r['kib_per_sub']:.1f} KiB RSS per idle subscriber "
            f"after a collection (server RSS {r['rss_mib']:.0f} MiB, {r['threads']} threads)"
        )
    print()
    print("Targets (issue #12): p99 < 50 ms at 1,000 subscribers, < 32 KiB per idle subscriber")
    for r in live:
        if r["name"].startswith("hub"):
            print(f"  p99 with {r['procs']} client process(es): {r['p99']:.1f} ms")
    for r in idle:
        print(f"  idle KiB per subscriber ({r['server']}): {r['kib_per_sub']:.1f}")
    for r in live:
        if r["breakdown"]:
            print()
            print(
                f"Where a frame's time goes ({r['name']}, {r['procs']} client process(es)): "
                "ms after the ingester's POST start, over the frames at "
                f"{args.rate:g} Hz; step = median of the time since the step before"
            )
            print()
            print("| step | median | p99 | step |")
            print("|---|---:|---:|---:|")
            for label, median, p99, step in r["breakdown"]:
                print(f"| {label} | {median:.2f} | {p99:.2f} | {step:.2f} |")


async def main_async(args) -> None:
    try:
        await run_phases(args)
    finally:
        clean_up(args)


async def run_phases(args) -> None:
    tokens = prepare_database(args)
    live = [
        await live_phase(args, tokens, "hub (product)", PRODUCT_PATH, PRODUCT_INGEST, int(procs))
        for procs in args.client_procs.split(",")
    ]
    if not args.skip_naive:
        live.append(
            await live_phase(
                args,
                tokens,
                "naive (member per response)",
                NAIVE_PATH,
                NAIVE_INGEST,
                live[-1]["procs"],
            )
        )
    idle = []
    if args.idle:
        for server_name in args.idle_servers.split(","):
            idle.append(await idle_phase(args, tokens, server_name))
    print_report(args, live, idle)


def build_parser() -> argparse.ArgumentParser:
    """The bench's options; bench/servers.py takes its defaults from here too."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--drain", type=float, default=30.0, help="max wait after the last POST")
    parser.add_argument("--idle", type=int, default=1000)
    parser.add_argument(
        "--idle-servers", default="uvicorn,daphne", help="servers of the idle phase, in order"
    )
    parser.add_argument(
        "--client-procs",
        default="1,2",
        help="client processes of the product's live phase, one phase per value",
    )
    parser.add_argument(
        "--warmup",
        type=int,
        default=10,
        help="frames POSTed at the rate before the measured ones (reported apart)",
    )
    parser.add_argument("--burst", type=int, default=50, help="frames in the burst POST")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--server", choices=sorted(SERVER_CONFIGS), default="uvicorn")
    parser.add_argument(
        "--probe",
        action="store_true",
        help="stamp each ingest's steps in the worker and print the breakdown",
    )
    return parser


def main() -> None:
    args = build_parser().parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
