"""The cost of storing telemetry: the locked check-and-insert of `telemetry_store`.

    .venv/bin/python bench/telemetry_ingest.py                 # this checkout
    .venv/bin/python bench/telemetry_ingest.py --root /tmp/old --root .  # before and after

For SQLite (a fresh file) and PostgreSQL (databases mc_bench_ingest_<n>, one
per checkout, dropped first and at the end), each round creates a new rover
and a fresh process calls
`rover.services.telemetry.telemetry_store` directly (no HTTP, no publish):
`singles` one-frame requests, then `batches` requests of 50 frames, each timed
alone (frames/s = frames per request / median time); then two processes store
one-frame requests for the same rover at once (the rover row's lock serialises
them) and the table shows their combined frames/s over the wall time. Rounds
alternate between checkouts; the table prints each cell's median over rounds.
`--root` (repeatable) measures other checkouts of the project in the same run
(e.g. `git archive main | tar -x -C /tmp/old`), to compare before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG  # noqa: E402

DB_PREFIX = "mc_bench_ingest_"

# Runs in a child process inside the measured checkout: prints one JSON line.
CHILD = r"""
import json, sys, time
from datetime import UTC, datetime, timedelta
import django
django.setup()
from rover.models import Rover
from rover.services.telemetry import telemetry_store, telemetry_validate

slug, first, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rover = Rover.objects.get_or_create(slug=slug, defaults={"name": slug})[0]
base = datetime(2026, 11, 25, tzinfo=UTC)

def frames(start):
    return telemetry_validate(payload=[
        {"seq": s, "recorded_at": (base + timedelta(seconds=s)).isoformat(),
         "battery_pct": 80.0, "signal_dbm": -90.0, "x_m": 1.0, "mode": "driving"}
        for s in range(start, start + size)
    ])

times = []
seq = first
started = time.perf_counter()
for _ in range(count):
    batch = frames(seq)
    t0 = time.perf_counter()
    telemetry_store(rover=rover, frames=batch)
    times.append(time.perf_counter() - t0)
    seq += size
print(json.dumps({"times": times, "wall": time.perf_counter() - started}))
"""


def child_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="mission_control.settings.base",
        DATABASE_URL=database_url,
        DEBUG="false",
        REDIS_URL="",
        LOG_LEVEL="WARNING",
    )
    return env


def prepare(root: Path, database_url: str) -> None:
    if database_url.startswith("postgres"):
        name = database_url.rsplit("/", 1)[1]
        subprocess.run(["dropdb", *PG, "--if-exists", name], check=True, capture_output=True)
        subprocess.run(["createdb", *PG, name], check=True)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=root,
        env=child_env(database_url),
        check=True,
    )


def start(
    root: Path, database_url: str, rover: str, first: int, count: int, size: int
) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, rover, str(first), str(count), str(size)],
        cwd=root,
        env=child_env(database_url),
        stdout=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen) -> dict:
    out, _ = proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"bench child failed ({proc.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def measure(root: Path, database_url: str, rover: str, args) -> dict[tuple, tuple]:
    """Return {(request, writers): (p50 ms, p99 ms, frames/s)} for one round on a new rover."""
    rows = {}
    seq = 1
    for label, count, size in (("1 frame", args.singles, 1), ("50 frames", args.batches, 50)):
        data = result(start(root, database_url, rover, seq, count, size))
        seq += count * size
        times = data["times"][args.warmup :]
        rate = size / statistics.median(times)
        rows[(label, "1 process")] = (statistics.median(times) * 1000, pct(times, 0.99), rate)
    # Two writers for one rover at once, distinct seqs, so both store every request.
    count = args.singles
    procs = [start(root, database_url, rover, seq + i * count, count, 1) for i in range(2)]
    both = [result(proc) for proc in procs]
    times = [t for data in both for t in data["times"]]
    wall = max(data["wall"] for data in both)
    rows[("1 frame", "2 at once")] = (
        statistics.median(times) * 1000,
        pct(times, 0.99),
        2 * count / wall,
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, action="append", help="checkout(s) to measure")
    parser.add_argument("--singles", type=int, default=1000)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-postgres", action="store_true")
    args = parser.parse_args()
    roots = [root.resolve() for root in args.root or [ROOT]]
    with tempfile.TemporaryDirectory() as tmp:
        targets = []
        for index, root in enumerate(roots):
            targets.append((root, "SQLite", f"sqlite:///{tmp}/ingest-{index}.sqlite3"))
            if not args.no_postgres:
                url = f"postgres://postgres@127.0.0.1:5432/{DB_PREFIX}{index}"
                targets.append((root, "PostgreSQL", url))
        for root, _name, url in targets:
            prepare(root, url)
        # Rounds alternate between the checkouts, so a busy machine weighs on each alike.
        rounds: dict[tuple, list[tuple]] = {}
        for number in range(args.rounds):
            for root, name, url in targets:
                for key, row in measure(root, url, f"bench-{number}", args).items():
                    rounds.setdefault((root, name, *key), []).append(row)
    print(f"Median of {args.rounds} rounds:")
    print("| checkout | database | request | writers | p50 ms | p99 ms | frames/s |")
    print("|---|---|---|---|---:|---:|---:|")
    for (root, name, label, writers), rows in rounds.items():
        p50, p99, rate = (statistics.median(column) for column in zip(*rows, strict=True))
        print(f"| {root} | {name} | {label} | {writers} | {p50:.2f} | {p99:.2f} | {rate:,.0f} |")
    for _root, _name, url in targets:
        if url.startswith("postgres"):
            subprocess.run(["dropdb", *PG, "--if-exists", url.rsplit("/", 1)[1]], check=True)


if __name__ == "__main__":
    main()
