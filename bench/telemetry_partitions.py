"""Retention by dropping a weekly partition against deleting its rows (PostgreSQL).

    .venv/bin/python bench/telemetry_partitions.py            # 2 days at 10 Hz per week
    .venv/bin/python bench/telemetry_partitions.py --days 1   # a smaller run

Creates the PostgreSQL database mc_bench_partitions (dropped first, and again at
the end unless --keep), migrated up to rover 0004 (the plain frames table), seeds
three weeks A, B, C (six, five and four weeks ago) with the same frames: --days
days at 10 Hz from each Monday, one rover, and times the migration that
partitions the table. Then, with production settings:

1. `prune_telemetry --rover curiosity` up to the end of A: with --rover it deletes
   rows in batches, as every prune did before partitions; then VACUUM of A, which
   a DELETE leaves to do (autovacuum would run it).
2. `prune_telemetry` up to the end of B: B is dropped whole.
3. `prune_telemetry` up to the middle of C's frames: the boundary week, rows
   deleted. Then, with nothing left below the cutoff, the statements a prune
   runs on the boundary week (its dry-run count and its batch select) are
   timed with EXPLAIN ANALYZE, without and then with the migration's BRIN
   index on recorded_at (dropped, then built again: its time and size are printed).

Before and after the migration it also times ingest's two reads, which name no
time and so visit every partition (planning and execution, EXPLAIN ANALYZE).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import PG, production_env, recreate_database  # noqa: E402
from bench.common import psql as run_psql  # noqa: E402

PYTHON = sys.executable
DB_NAME = os.environ.get("MC_BENCH_PARTITIONS_DB", "mc_bench_partitions")
RATE_HZ = 10
WEEK = timedelta(days=7)


def manage(*args: str) -> str:
    env = production_env(settings_module="mission_control.settings.production", database=DB_NAME)
    done = subprocess.run(
        [PYTHON, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, text=True
    )
    return done.stdout


def psql(sql: str) -> str:
    return run_psql(sql, database=DB_NAME)


def week_start(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def seed(rover_id: int, start: datetime, first_seq: int, frames: int) -> None:
    """Insert `frames` frames at 10 Hz from `start`, seqs from first_seq."""
    # Only integers and a timestamp this script computed are interpolated.
    psql(f"""
        INSERT INTO rover_telemetryframe (rover_id, seq, ingest_id, recorded_at, received_at,
            battery_pct, signal_dbm, temp_internal_c, mode)
        SELECT {rover_id}, s, s, t, t + interval '2 s', 50 + 30 * sin(s / 9000.0),
            -95 + 20 * sin(s / 3000.0), 15 + 10 * sin(s / 50000.0), 'driving'
        FROM generate_series({first_seq}, {first_seq + frames - 1}) AS s,
            LATERAL (SELECT timestamptz '{start.isoformat()}'
                + (s - {first_seq}) * interval '100 ms' AS t) AS ts
    """)  # noqa: S608


def prune(until: datetime, now: datetime, *extra: str) -> tuple[float, str]:
    """Run prune_telemetry with its cutoff at `until` rounded down to the hour.

    `until` should be half an hour past a whole hour, so the command's own clock
    (a little later than `now`) rounds to the same hour.
    """
    minutes = math.floor((now - until) / timedelta(minutes=1))
    started = time.monotonic()
    out = manage("prune_telemetry", "--older-than", f"{minutes}m", *extra)
    return time.monotonic() - started, out.strip().splitlines()[0]


def explain_ms(sql: str) -> float:
    plan = psql(f"EXPLAIN (ANALYZE, FORMAT TEXT) {sql}")
    return float(re.search(r"Execution Time: ([\d.]+) ms", plan)[1])


def ingest_statements_ms(rover_id: int, top: int) -> float:
    """Return planning + execution time of ingest's two reads for a 10-frame batch.

    telemetry_store asks for the rover's newest seq and for which of the batch's
    seqs are stored; neither names a time, so on the partitioned table both
    visit every partition. Timed in one session, as a pooled connection runs
    them (a new session plans slower while it fills its catalog caches): the
    best of 5 for each, summed.
    """
    seqs = ", ".join(str(top - n) for n in range(10))
    statements = [
        f"SELECT max(seq) FROM rover_telemetryframe WHERE rover_id = {rover_id}",  # noqa: S608
        f"SELECT seq FROM rover_telemetryframe WHERE rover_id = {rover_id} AND seq IN ({seqs})",  # noqa: S608
    ]
    rounds = 5
    script = "".join(f"EXPLAIN (ANALYZE) {sql};\n" for _ in range(rounds) for sql in statements)
    done = subprocess.run(
        ["psql", *PG, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", DB_NAME],
        input=script,
        check=True,
        capture_output=True,
        text=True,
    )
    plans = done.stdout.split("Execution Time")
    spent = []
    for plan in plans[:-1]:
        planning = float(re.findall(r"Planning Time: ([\d.]+)", plan)[-1])
        execution = float(re.match(r": ([\d.]+)", plans[len(spent) + 1])[1])
        spent.append(planning + execution)
    return sum(min(spent[i :: len(statements)]) for i in range(len(statements)))


def timed_psql(sql: str) -> float:
    started = time.monotonic()
    psql(sql)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=float, default=2.0, help="days of 10 Hz frames per week")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    frames = int(args.days * 86_400 * RATE_HZ)
    now = datetime.now(UTC)
    a, b, c = (week_start(now) - n * WEEK for n in (6, 5, 4))
    recreate_database(DB_NAME)
    try:
        manage("migrate", "rover", "0004", "--noinput", "-v", "0")
        psql(
            "INSERT INTO rover_rover (slug, name, description, created_at, last_ingest_id, "
            "stale_after_seconds) VALUES ('curiosity', 'Curiosity', '', now(), 0, 10)"
        )
        rover_id = int(psql("SELECT id FROM rover_rover WHERE slug = 'curiosity'"))
        print(f"Seeding {frames:,} frames into each of the weeks of {a:%Y-%m-%d}, "
              f"{b:%Y-%m-%d}, {c:%Y-%m-%d} (plain table) ...", flush=True)  # fmt: skip
        for index, start in enumerate((a, b, c)):
            seed(rover_id, start, 1 + index * frames, frames)
        psql("VACUUM ANALYZE rover_telemetryframe")
        ingest_plain = ingest_statements_ms(rover_id, 3 * frames)
        started = time.monotonic()
        manage("migrate", "--noinput", "-v", "0")
        print(f"Migration to weekly partitions: {time.monotonic() - started:.1f} s "
              f"for {3 * frames:,} frames.", flush=True)  # fmt: skip
        psql("VACUUM ANALYZE rover_telemetryframe")
        weeks = psql(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'rover_telemetryframe'::regclass"
        )
        ingest_parted = ingest_statements_ms(rover_id, 3 * frames)
        print(
            f"Ingest's two reads (newest seq, stored seqs of 10): {ingest_plain:.2f} ms on the "
            f"plain table, {ingest_parted:.2f} ms over {weeks} partitions.",
            flush=True,
        )
        part = {w: f"rover_telemetryframe_w{w:%Y%m%d}" for w in (a, b, c)}
        size = psql(f"SELECT pg_size_pretty(pg_total_relation_size('{part[a]}'))")
        print(f"One week: {frames:,} frames, {size} with its indexes.\n")
        rows = []
        seconds, out = prune(a + WEEK - timedelta(minutes=30), now, "--rover", "curiosity")
        rows.append(("DELETE in batches (--rover), week A", seconds, out))
        rows.append(("VACUUM of week A after it", timed_psql(f"VACUUM {part[a]}"), ""))
        seconds, out = prune(b + WEEK + timedelta(minutes=30), now)
        rows.append(("DROP of the whole week B", seconds, out))
        middle = c + timedelta(hours=math.floor(args.days * 12), minutes=30)
        seconds, out = prune(middle, now)
        rows.append(("boundary week C, half its frames", seconds, out))
        width = max(len(r[0]) for r in rows)
        print(f"{'prune_telemetry':<{width}}  seconds  output")
        for name, seconds, out in rows:
            print(f"{name:<{width}}  {seconds:7.2f}  {out}")
        cutoff = psql(
            "SELECT min(recorded_at) FROM rover_telemetryframe"
        )  # nothing is left below it, as after a prune
        count = f"SELECT count(*) FROM rover_telemetryframe WHERE recorded_at < '{cutoff}'"  # noqa: S608
        batch = (
            f"SELECT id FROM rover_telemetryframe WHERE recorded_at < '{cutoff}' "  # noqa: S608
            "ORDER BY id LIMIT 5000"
        )
        print("\nThe boundary week's statements with nothing left below the cutoff (ms):")
        print(f"{'index':<24}  {'dry-run count':>13}  {'batch select':>12}")
        psql("DROP INDEX rover_telemetryframe_recorded_brin")  # the migration's
        plain = [min(explain_ms(sql) for _ in range(3)) for sql in (count, batch)]
        print(f"{'btrees only':<24}  {plain[0]:13.1f}  {plain[1]:12.1f}")
        build = timed_psql(
            "CREATE INDEX rover_telemetryframe_recorded_brin ON rover_telemetryframe "
            "USING brin (recorded_at)"
        )
        psql("ANALYZE rover_telemetryframe")
        brin_size = psql(
            "SELECT pg_size_pretty(sum(pg_relation_size(i.indexrelid))) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE c.relname LIKE '%recorded_at%' "
            "AND c.relam = (SELECT oid FROM pg_am WHERE amname = 'brin')"
        )
        brin = [min(explain_ms(sql) for _ in range(3)) for sql in (count, batch)]
        print(f"{'+ BRIN (recorded_at)':<24}  {brin[0]:13.1f}  {brin[1]:12.1f}")
        print(f"BRIN build: {build:.1f} s for the remaining weeks, size {brin_size}.")
    finally:
        if not args.keep:
            subprocess.run(["dropdb", *PG, "--if-exists", DB_NAME], check=False)


if __name__ == "__main__":
    main()
