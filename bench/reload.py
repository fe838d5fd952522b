"""What a worker replacement drops: uvicorn's supervisor against gunicorn's, in one run.

    .venv/bin/python bench/reload.py                        # both process managers
    .venv/bin/python bench/reload.py --managers gunicorn

Starts the stack through scripts/serve.py (nginx + 2 uvicorn workers under
uvicorn's supervisor, over PostgreSQL and Redis), then, under load through nginx
(4 clients looping GET /healthz, the rover POSTing one frame every 50 ms, 20 SSE
followers resuming by Last-Event-ID, 10 room members resuming with `resume`),
replaces the workers two ways:

- rolling: `serve.py reload` (what `make reload` runs): uvicorn's supervisor
  starts a new worker, waits until it serves, then stops one old worker;
- all at once: SIGTERM to every worker together; the supervisor notices and
  starts new ones (what a plain restart of the workers does).

Then the same with gunicorn + uvicorn-worker as the process manager behind the
same nginx configuration (bench/reload_gunicorn.py): gunicorn's SIGHUP, one at
a time with TTIN / TTOU, and all at once.

It prints one row per way: requests answered, failed (no answer or 5xx), the
slowest /healthz, how long the replacement took, and frames/messages lost or
doubled for the resuming clients.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mission_control.settings.test")

from bench.reload_gunicorn import GunicornStack, sighup, ttin_ttou, wait_replaced  # noqa: E402
from testing.resuming_clients import RoomMember, SSEFollower  # noqa: E402
from testing.stack import ProductionStack  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
STREAM = "/rovers/curiosity/telemetry/stream"


def frame(seq: int) -> dict:
    return {
        "seq": seq,
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "battery_pct": 80.0,
        "signal_dbm": -90.0,
    }


def all_at_once(stack: ProductionStack) -> float:
    """SIGTERM every worker at once; the supervisor starts new ones (a plain restart)."""
    old = stack.worker_pids()
    started = time.monotonic()
    for pid in old:
        os.kill(pid, signal.SIGTERM)
    wait_replaced(stack, old)
    return time.monotonic() - started


def rolling(stack: ProductionStack) -> float:
    started = time.monotonic()
    done = stack.reload()
    assert done.returncode == 0, done.stderr
    return time.monotonic() - started


async def measure(stack: ProductionStack, how, first_seq: int) -> dict:
    async with stack.client(limits=httpx.Limits(max_connections=100)) as client:
        followers = [SSEFollower(client, STREAM, stack.auth("bob")).start() for _ in range(20)]
        members = [
            RoomMember(stack.ws_url, stack.tokens[("alice", "bob")[i % 2]]).start()
            for i in range(10)
        ]
        for waiter in (*(f.connected for f in followers), *(m.joined for m in members)):
            await asyncio.wait_for(waiter.wait(), 20)
        answered = failed = 0
        slowest = 0.0
        stop = asyncio.Event()
        seqs = itertools.count(first_seq)
        stored: list[int] = []

        async def probe():
            nonlocal answered, failed, slowest
            while not stop.is_set():
                try:
                    sent = time.monotonic()
                    response = await client.get("/healthz")
                    slowest = max(slowest, time.monotonic() - sent)
                    if response.status_code >= 500:
                        failed += 1
                    else:
                        answered += 1
                except httpx.HTTPError:
                    failed += 1
                await asyncio.sleep(0.005)

        async def ingest():
            nonlocal answered, failed
            while not stop.is_set():
                seq = next(seqs)
                while True:  # the rover retries until the frame is stored
                    try:
                        response = await client.post(
                            "/api/rovers/curiosity/telemetry",
                            json=[frame(seq)],
                            headers=stack.auth("rover"),
                        )
                        if response.status_code < 500:
                            answered += 1
                            break
                    except httpx.HTTPError:
                        pass
                    failed += 1
                    await asyncio.sleep(0.05)
                stored.append(seq)
                await asyncio.sleep(0.05)

        async def chat():
            sender = RoomMember(stack.ws_url, stack.tokens["alice"]).start()
            for n in itertools.count():
                if stop.is_set():
                    break
                while True:
                    try:
                        await asyncio.wait_for(sender.joined.wait(), 60)
                    except TimeoutError:
                        died = sender._task.done() and sender._task.exception()
                        raise RuntimeError(
                            f"the chat sender did not rejoin in 60 s: task died {died!r},"
                            f" last errors {sender.errors[-3:]}, closes {sender.close_codes[-3:]}"
                        ) from None
                    try:
                        await sender.send(f"m{n}", client_id=f"{first_seq}-{n}")
                        break
                    except Exception:
                        await asyncio.sleep(0.05)
                await asyncio.sleep(0.1)
            await sender.stop()

        known = await client.get("/api/teams/ops/messages?limit=200", headers=stack.auth("alice"))
        known_ids = {m["id"] for m in known.json()["messages"]}
        load = [asyncio.ensure_future(c()) for c in (probe, probe, probe, probe, ingest, chat)]
        await asyncio.sleep(2)
        took = await asyncio.to_thread(how, stack)
        await asyncio.sleep(2)
        stop.set()
        await asyncio.gather(*load)
        for follower in followers:
            with_timeout = asyncio.wait_for(follower.until_seq(stored[-1], 60), 70)
            await with_timeout
        response = await client.get(
            "/api/teams/ops/messages?limit=200", headers=stack.auth("alice")
        )
        expected = [m["id"] for m in response.json()["messages"] if m["id"] not in known_ids]
        for member in members:
            await member.until_id(expected[-1], 60)
        lost = doubled = lost_msgs = doubled_msgs = 0
        for follower in followers:
            got = [s for s in follower.seqs if s >= first_seq]
            lost += len(set(stored) - set(got))
            doubled += len(got) - len(set(got))
        for member in members:
            got = [i for i in member.ids if i not in known_ids]
            doubled_msgs += len(got) - len(set(got))
            lost_msgs += len(set(expected) - set(got))
        for c in (*followers, *members):
            await c.stop()
        return {
            "answered": answered,
            "failed": failed,
            "took": took,
            "slowest": slowest,
            "frames": len(stored),
            "lost": lost,
            "doubled": doubled,
            "lost_msgs": lost_msgs,
            "messages": len(expected),
            "doubled_msgs": doubled_msgs,
        }


# Each process manager's ways of replacing the workers: (row name, function, first seq).
WAYS = {
    "uvicorn": (
        ProductionStack,
        [
            ("uvicorn: rolling (make reload)", rolling, 1000),
            ("uvicorn: all at once", all_at_once, 5000),
        ],
    ),
    "gunicorn": (
        GunicornStack,
        [
            ("gunicorn: SIGHUP", sighup, 1000),
            ("gunicorn: TTIN / TTOU one at a time", ttin_ttou, 5000),
            ("gunicorn: all at once", all_at_once, 9000),
        ],
    ),
}


def run(manager: str) -> list[tuple[str, dict]]:
    """Start `manager`'s stack, measure each of its ways in turn, stop it."""
    stack_class, ways = WAYS[manager]
    stack = stack_class(
        postgres_url=POSTGRES,
        redis_url=REDIS,
        workers=2,
        DATABASE_POOL_MAX="10",
        STATIC_ROOT="/tmp/mc-bench-reload-static",
    )
    print(f"starting {manager} ...", flush=True)
    stack.start()
    rows = []
    try:
        for name, how, first in ways:
            print(f"measuring {name} ...", flush=True)
            try:
                rows.append((name, asyncio.run(measure(stack, how, first))))
            except Exception as exc:  # one way failing must not hide the others' rows
                rows.append((name, {"error": f"{type(exc).__name__}: {exc}"}))
    finally:
        # The workers' and nginx's output, kept for a row that fails or looks odd.
        nginx_errors = stack.run_dir / "nginx-error.log"
        errors = nginx_errors.read_text() if nginx_errors.exists() else ""
        Path(f"/tmp/mc-bench-reload-{manager}.log").write_text(stack.log() + errors)
        stack.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--managers", nargs="+", choices=list(WAYS), default=list(WAYS))
    args = parser.parse_args()
    rows = [row for manager in args.managers for row in run(manager)]
    print()
    print(
        "| how | requests answered | failed (no answer or 5xx) | slowest /healthz |"
        " replacement took | frames lost / doubled | messages lost / doubled |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        if "error" in r:
            print(f"| {name} | failed: {r['error']} |")
            continue
        print(
            f"| {name} | {r['answered']} | {r['failed']} | {r['slowest'] * 1000:.0f} ms |"
            f" {r['took']:.1f} s |"
            f" {r['lost']} / {r['doubled']} (of {r['frames']} x 20) |"
            f" {r['lost_msgs']} / {r['doubled_msgs']} (of {r['messages']} x 10) |"
        )
    print(f"\n({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
