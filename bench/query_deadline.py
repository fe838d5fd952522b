"""What the query deadline costs per round trip (mission_control.database_deadline).

    .venv/bin/python bench/query_deadline.py [--url postgres://postgres@127.0.0.1:5432/test]

Two figures, psycopg's plain `Connection` against `DeadlineConnection` unarmed
and armed (10 s), on one connection to the given server (read-only: SELECT 1)
whose class is switched between the three in each round, so that one backend
serves them all. The machine is shared: the best round is the least disturbed.

- wait: `Connection.wait()` of a generator that is done at once, `--calls` times
  a round (best round): the deadline's own cost, with no network in the way;
- execute: `cursor.execute("SELECT 1")` + `fetchone()`, `--queries` times a
  round (best and median round): a whole round trip, for scale.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from mission_control import database_deadline
from mission_control.database_deadline import DeadlineConnection


def _done_at_once():
    return None
    yield  # a generator that finishes on its first next()


def _wait_ns(conn: psycopg.Connection, calls: int) -> float:
    wait = conn.wait
    started = time.perf_counter_ns()
    for _ in range(calls):
        wait(_done_at_once())
    return (time.perf_counter_ns() - started) / calls


def _execute_us(conn: psycopg.Connection, queries: int) -> float:
    cursor = conn.cursor()
    started = time.perf_counter_ns()
    for _ in range(queries):
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return (time.perf_counter_ns() - started) / queries / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1/test")
    )
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=3_000)
    args = parser.parse_args()

    kinds = {
        "psycopg Connection": (psycopg.Connection, 0),
        "DeadlineConnection, not armed": (DeadlineConnection, 0),
        "DeadlineConnection, armed 10 s": (DeadlineConnection, 10),
    }
    conn = psycopg.Connection.connect(args.url, autocommit=True)
    waits: dict[str, list[float]] = {name: [] for name in kinds}
    executes: dict[str, list[float]] = {name: [] for name in kinds}
    try:
        for _ in range(args.rounds):
            for name, (cls, seconds) in kinds.items():
                conn.__class__ = cls  # DeadlineConnection adds a method, no state
                database_deadline.arm(seconds)
                waits[name].append(_wait_ns(conn, args.calls))
                executes[name].append(_execute_us(conn, args.queries))
    finally:
        database_deadline.arm(0)
        conn.__class__ = psycopg.Connection
        conn.close()
    base_wait = min(waits["psycopg Connection"])
    base_execute = min(executes["psycopg Connection"])
    median_execute = statistics.median(executes["psycopg Connection"])
    print(f"{args.rounds} rounds; {args.calls} waits, {args.queries} queries each round")
    for name in kinds:
        wait, execute = min(waits[name]), min(executes[name])
        median = statistics.median(executes[name])
        print(
            f"{name:30} wait best {wait:4.0f} ns ({wait - base_wait:+4.0f})   "
            f"SELECT 1 best {execute:5.1f} us ({execute - base_execute:+4.1f}), "
            f"median {median:5.1f} us ({median - median_execute:+4.1f})"
        )


if __name__ == "__main__":
    main()
