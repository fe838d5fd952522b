"""Telemetry history by dashboard window over 1 sol and 30 sols of 10 Hz frames (PostgreSQL).

    .venv/bin/python bench/history.py              # 1 sol, then 30 sols (about 10 minutes)
    .venv/bin/python bench/history.py --sols 1     # the first phase only

Creates the PostgreSQL database mc_bench_history (dropped first, and dropped
again at the end unless --keep), migrates it and makes a viewer token. Then,
per phase:

1. seeds frames of the rover `curiosity` at 10 Hz with generate_series, ending
   at a fixed "now" (the 1-sol phase seeds the last sol, the 30-sol phase the 29
   sols before it). One frame 100 s before "now" is a battery dip to 1 % (every
   other frame is at least 20 %): each window must show it in a bucket's
   `battery_pct_min`.
2. builds the rollups the way an operator would after a bulk load:
   `manage.py rebuild_telemetry_rollups` (ingest keeps them by itself), then
   VACUUM ANALYZE (what autovacuum does on a live database).
3. starts ONE uvicorn worker with production settings and times
   `GET /api/rovers/curiosity/telemetry?since=&until=&points=600` for each
   dashboard window ending at "now": one warm-up, then --repeat timed requests
   (client and server on the same machine). The same server also answers the
   request as the product did before rollups (bench/history_urls.py: every
   frame into Python), timed the same way with 2 requests, for the windows up
   to 1 sol, in the 1-sol phase.

Finally it measures what rollups add to ingest: `telemetry_store` of single
frames and of 50-frame batches, with and without the rollup upsert, in one
process against the same database (a rover of its own).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG, production_env, recreate_database  # noqa: E402
from bench.common import psql as run_psql  # noqa: E402
from testing.servers import ServerProcess  # noqa: E402

PYTHON = sys.executable
DB_NAME = "mc_bench_history"
LOG_DIR = Path("/tmp/mc-bench-history")
SOL_S = 88_775
RATE_HZ = 10
SOL_FRAMES = SOL_S * RATE_HZ
WINDOWS = [("5 min", 300), ("1 h", 3600), ("1 sol", SOL_S), ("30 sols", 30 * SOL_S)]
POINTS = 600
SPIKE_BEFORE_END_S = 100
URL = "/api/rovers/curiosity/telemetry"
# The same request answered as before rollups (bench/history_urls.py).
NAIVE_URL = "/api/bench/naive/rovers/curiosity/telemetry"  # tokens work under /api/ only
NAIVE_WINDOWS = ("5 min", "1 h", "1 sol")  # 30 sols would stream 26.6M frames per request
NAIVE_REPEAT = 2


def server_env() -> dict[str, str]:
    return production_env(
        settings_module="bench.history_settings",
        database=DB_NAME,
        LOG_LEVEL="WARNING",
    )


def manage(*args: str) -> str:
    done = subprocess.run(
        [PYTHON, "manage.py", *args],
        cwd=ROOT,
        env=server_env(),
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


def psql(sql: str) -> str:
    return run_psql(sql, database=DB_NAME)


def prepare() -> tuple[int, str]:
    """Create and migrate the database; return the rover's id and a viewer token."""
    recreate_database(DB_NAME)
    manage("migrate", "--noinput", "-v", "0")
    manage("seed_demo")
    script = (
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from accounts.services import token_create\n"
        "from rover.models import Rover\n"
        "viewer = get_user_model().objects.create_user('bench-viewer')\n"
        "rover = Rover.objects.get(slug='curiosity')\n"
        "print(json.dumps([rover.pk, token_create(user=viewer)[1]]))\n"
    )
    rover_id, token = json.loads(manage("shell", "-c", script).strip().splitlines()[-1])
    return rover_id, token


def seed_frames(rover_id: int, first_seq: int, last_seq: int, start: datetime) -> None:
    """Insert frames first_seq..last_seq (inclusive), frame n recorded at start + n / 10 s."""
    day = f"(2 * pi() * s / {SOL_FRAMES})"
    # Only integers and a timestamp this script computed are interpolated.
    sql = f"""
        INSERT INTO rover_telemetryframe (rover_id, seq, ingest_id, recorded_at, received_at,
            x_m, y_m, heading_deg, battery_pct, battery_v, signal_dbm, temp_internal_c,
            temp_ambient_c, speed_mps, mode)
        SELECT {rover_id}, s, s, t, t + interval '1.2 seconds',
            50 * sin(s / 20000.0), 50 * cos(s / 23000.0), mod(s / 50, 360),
            55 + 35 * sin({day}), 27 + 0.04 * (55 + 35 * sin({day})),
            -95 + 20 * sin(s / 3000.0), 15 + 10 * sin({day}), -60 + 40 * sin({day}),
            CASE WHEN (s / 6000) % 3 = 0 THEN 0.04 ELSE 0 END,
            CASE WHEN (s / 6000) % 3 = 0 THEN 'driving' ELSE 'idle' END
        FROM generate_series({first_seq}, {last_seq}) AS s,
            LATERAL (SELECT timestamptz '{start.isoformat()}' + s * interval '100 ms' AS t) AS ts
    """  # noqa: S608
    psql(sql)


def without_frame_indexes(load) -> None:
    """Run `load` with the frame table's secondary indexes and constraints dropped, then
    recreate them as they were (PostgreSQL's "Populating a Database" advice)."""
    table = "rover_telemetryframe"
    constraints = psql(
        "SELECT conname || '|' || pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'rover_telemetryframe'::regclass AND contype IN ('u', 'f')"
    ).splitlines()
    indexes = psql(
        "SELECT indexname || '|' || indexdef FROM pg_indexes "
        "WHERE tablename = 'rover_telemetryframe' "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
    ).splitlines()
    for line in constraints:
        psql(f"ALTER TABLE {table} DROP CONSTRAINT {line.split('|')[0]}")
    for line in indexes:
        psql(f"DROP INDEX {line.split('|')[0]}")
    load()
    for line in indexes:
        psql(line.split("|", 1)[1])
    for line in constraints:
        name, definition = line.split("|", 1)
        psql(f"ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")


def seed_phase(rover_id: int, sols: int, done_sols: int, end: datetime) -> dict:
    """Seed the sols before those already seeded; return the seeding and rollup timings."""
    start = end - timedelta(seconds=30 * SOL_S)
    total = 30 * SOL_FRAMES

    def load() -> None:
        for sol in range(done_sols, sols):
            last = total - 1 - sol * SOL_FRAMES
            seed_frames(rover_id, last - SOL_FRAMES + 1, last, start)

    began = time.monotonic()
    without_frame_indexes(load)
    seeded = time.monotonic() - began
    spike = total - 1 - SPIKE_BEFORE_END_S * RATE_HZ
    psql(f"UPDATE rover_telemetryframe SET battery_pct = 1.0 WHERE seq = {spike}")  # noqa: S608
    # The rover's ingest-id counter continues after the seeded frames, as ingest keeps it.
    counter = (
        "UPDATE rover_rover SET last_ingest_id = "
        "(SELECT max(ingest_id) FROM rover_telemetryframe WHERE rover_id = {id}) WHERE id = {id}"
    )
    psql(counter.format(id=int(rover_id)))
    began = time.monotonic()
    manage("rebuild_telemetry_rollups", "--rover", "curiosity")
    rollups = time.monotonic() - began
    began = time.monotonic()
    psql("VACUUM ANALYZE rover_telemetryframe")
    psql("VACUUM ANALYZE rover_telemetryrollup")
    vacuum = time.monotonic() - began
    frames = int(psql("SELECT count(*) FROM rover_telemetryframe"))
    return {"frames": frames, "seed_s": seeded, "rollups_s": rollups, "vacuum_s": vacuum}


def start_server() -> ServerProcess:
    """Start ONE uvicorn worker with production settings, as the other benches do."""
    return ServerProcess(
        env=server_env(),
        log_path=LOG_DIR / "server.log",
        server="uvicorn",
        options=["--log-level", "warning"],
    ).start()


def timed_get(client: httpx.Client, url: str, params: dict, repeat: int):
    """Return the last response and the times of `repeat` requests after one warm-up."""
    timings = []
    for attempt in range(repeat + 1):
        began = time.perf_counter()
        response = client.get(url, params=params)
        elapsed = time.perf_counter() - began
        response.raise_for_status()
        if attempt:  # the first request warms caches and the connection pool
            timings.append(elapsed)
    return response, timings


def time_windows(port: int, token: str, end: datetime, repeat: int, *, naive: bool) -> list[dict]:
    results = []
    # As nginx forwards it: production settings redirect plain HTTP to HTTPS.
    headers = {"Authorization": f"Bearer {token}", "X-Forwarded-Proto": "https"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers, timeout=600) as client:
        for label, seconds in WINDOWS:
            params = {
                "since": (end - timedelta(seconds=seconds)).isoformat(),
                "until": end.isoformat(),
                "points": POINTS,
            }
            naive_ms = None
            if naive and label in NAIVE_WINDOWS:
                _, naive = timed_get(client, NAIVE_URL, params, NAIVE_REPEAT)
                naive_ms = statistics.median(naive) * 1000
            response, timings = timed_get(client, URL, params, repeat)
            body = response.json()
            buckets = body["frames"]
            results.append(
                {
                    "window": label,
                    "median_ms": statistics.median(timings) * 1000,
                    "max_ms": max(timings) * 1000,
                    "naive_ms": naive_ms,
                    "source": (
                        "raw frames"
                        if body["resolution_seconds"] is None
                        else f"{body['resolution_seconds']} s rollups"
                    ),
                    "buckets": len(buckets),
                    "frames": sum(bucket["count"] for bucket in buckets),
                    "battery_min": min(bucket["battery_pct_min"] for bucket in buckets),
                    "kib": len(response.content) / 1024,
                }
            )
    return results


INGEST_SCRIPT = """
import json
import time
from datetime import UTC, datetime, timedelta
from django.db import transaction
from rover.models import Rover, TelemetryFrame
from rover.services import telemetry
from rover.services.telemetry import telemetry_store, telemetry_validate

rover = Rover.objects.create(slug=f"bench-ingest-{time.time_ns()}", name="Bench ingest")
# Recent: ingest refuses rover times more than a day ahead.
start = datetime.now(UTC) - timedelta(hours=6)
seq = 0

def frames(n):
    global seq
    batch = []
    for _ in range(n):
        batch.append({"seq": seq, "recorded_at": (start + timedelta(seconds=seq / 10)).isoformat(),
                      "battery_pct": 80.0, "signal_dbm": -90.0, "temp_internal_c": 15.0,
                      "x_m": 1.0, "y_m": 2.0, "speed_mps": 0.1, "mode": "driving"})
        seq += 1
    return telemetry_validate(payload=batch)

def per_frame_us(size, calls):
    payloads = [frames(size) for _ in range(calls)]
    began = time.perf_counter()
    for payload in payloads:
        telemetry_store(rover=rover, frames=payload)
    return (time.perf_counter() - began) / (size * calls) * 1e6

real = telemetry.telemetry_rollups_add
result = {}
for size, calls in ((1, 300), (50, 12)):
    per_frame_us(size, 30)  # warm-up
    for label in ("with", "without"):
        result[f"{size}-{label}"] = float("inf")
    # Interleaved rounds, best of each: the machine is shared, so noise only adds time.
    for _ in range(5):
        for label, add in (("with", real), ("without", lambda **kw: None)):
            telemetry.telemetry_rollups_add = add
            result[f"{size}-{label}"] = min(result[f"{size}-{label}"], per_frame_us(size, calls))
    telemetry.telemetry_rollups_add = real
    # The upsert alone, repeated inside one transaction that is rolled back.
    stored = [TelemetryFrame(rover=rover, received_at=start, **f) for f in frames(size)]
    with transaction.atomic():
        began = time.perf_counter()
        for _ in range(200):
            real(rover=rover, frames=stored)
        result[f"{size}-upsert"] = (time.perf_counter() - began) / (200 * size) * 1e6
        transaction.set_rollback(True)
print(json.dumps(result))
"""


def ingest_cost() -> dict[str, float]:
    out = manage("shell", "-c", INGEST_SCRIPT).strip().splitlines()[-1]
    return json.loads(out)


def sizes() -> dict[str, str]:
    names = {
        "frames (table)": "pg_table_size('rover_telemetryframe')",
        "frames (indexes)": "pg_indexes_size('rover_telemetryframe')",
        "rollups (table)": "pg_table_size('rover_telemetryrollup')",
        "rollups (indexes)": "pg_indexes_size('rover_telemetryrollup')",
    }
    return {label: psql(f"SELECT pg_size_pretty({expr})") for label, expr in names.items()}


def print_phase(sols: int, seed: dict, results: list[dict]) -> None:
    print(
        f"\n**{sols} sol{'s' if sols > 1 else ''}: {seed['frames']:,} frames "
        f"(seeded in {seed['seed_s']:.0f} s; rollups rebuilt in {seed['rollups_s']:.0f} s; "
        f"VACUUM ANALYZE {seed['vacuum_s']:.0f} s)**\n"
    )
    print(
        "| window | median | max | before rollups (median of 2) | read from | buckets | "
        "frames in window | battery min (spike 1.0) | response |"
    )
    print("|---|---:|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        naive = "not run" if r["naive_ms"] is None else f"{r['naive_ms']:,.0f} ms"
        print(
            f"| {r['window']} | **{r['median_ms']:.0f} ms** | {r['max_ms']:.0f} ms | {naive} | "
            f"{r['source']} | {r['buckets']} | {r['frames']:,} | {r['battery_min']:g} | "
            f"{r['kib']:.0f} KiB |"
        )
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sols", type=int, choices=(1, 30), default=30)
    parser.add_argument("--repeat", type=int, default=7, help="timed requests per window")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    end = datetime.now(UTC).replace(microsecond=0)
    rover_id, token = prepare()
    # The weeks the seeded sols fall in, as ingest would have made them over time
    # (PostgreSQL's weekly partitions; otherwise the frames would all go to DEFAULT).
    manage("telemetry_partitions", "--since", f"{end - timedelta(seconds=31 * SOL_S):%Y-%m-%d}")
    print(f"# bench/history.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, points={POINTS}")
    try:
        done = 0
        for sols in (1, 30)[: 1 if args.sols == 1 else 2]:
            seed = seed_phase(rover_id, sols, done, end)
            done = sols
            server = start_server()
            try:
                # Before rollups the cost followed the frames in the window, not the
                # table: timed once, on 1 sol, as issue #12 measured it.
                results = time_windows(server.port, token, end, args.repeat, naive=sols == 1)
            finally:
                server.stop(timeout=15)
            print_phase(sols, seed, results)
        print("\nSizes:", ", ".join(f"{k} {v}" for k, v in sizes().items()))
        cost = ingest_cost()
        print("\nIngest, µs per frame (telemetry_store with its commit, best of 5 rounds):\n")
        print("| frames per request | with rollups | without | the rollup upsert alone |")
        print("|---:|---:|---:|---:|")
        for size in (1, 50):
            with_, without = cost[f"{size}-with"], cost[f"{size}-without"]
            alone = cost[f"{size}-upsert"]
            print(f"| {size} | {with_:.0f} µs | {without:.0f} µs | {alone:.0f} µs |")
    finally:
        if not args.keep:
            subprocess.run(["dropdb", *PG, "--if-exists", DB_NAME], check=True)


if __name__ == "__main__":
    main()
