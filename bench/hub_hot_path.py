"""The hub's hot path, old checkout against new, in the same run (a busy machine: ratios).

    .venv/bin/python bench/hub_hot_path.py --before /path/to/other/checkout [--rounds 3]

Each round runs one child process per checkout (alternating, so load drifts hit
both), each importing that checkout's `streams.hub` over the shared Redis at
127.0.0.1:6379 (its own key prefix, deleted afterwards):

- publish: `Hub.publish_many` of one event, `--events` times in a row, with
  `--subs` local subscribers: the numbering round trip plus the PUBLISH, then
  the time until every subscriber has every event (publish -> Redis -> reader ->
  fan-out), as events/s end to end;
- dispatch: `Hub._dispatch` of a numbered message straight into `--subs` local
  subscribers, `--events` times: the receiving side's per-message cost.

Prints, per checkout, the best round (the least disturbed by other load: the
machine is shared) and the median, and the after/before ratios of both.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def _measure(events: int, subs: int) -> dict[str, float]:
    import asyncio
    import contextlib

    import redis.asyncio
    from django.conf import settings

    from streams.hub import get_hub

    hub = get_hub()
    stream = "rover.bench"
    result: dict[str, float] = {}
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(hub.subscribe(stream, maxsize=events * 2 + 10))
            for _ in range(subs)
        ]
        event = {"event": "telemetry", "id": 1, "data": "x" * 300}
        started = time.perf_counter()
        for _ in range(events):
            await hub.publish_many(stream, [event])
        published = time.perf_counter()
        while any(s.qsize() < events for s in subscriptions):
            await asyncio.sleep(0.001)
        delivered = time.perf_counter()
        result["publish_us"] = (published - started) / events * 1e6
        result["end_to_end_per_s"] = events / (delivered - started)
        for s in subscriptions:
            while s.get_nowait() is not None:
                pass
    # The receiving side alone: numbered messages straight into the fan-out, on a
    # stream nothing was published on (a fresh gap tracker), one epoch throughout.
    async with contextlib.AsyncExitStack() as stack:
        subscriptions = [
            await stack.enter_async_context(hub.subscribe("rover.dispatch", maxsize=events + 10))
            for _ in range(subs)
        ]
        message = {"type": "hub.event", "stream": "rover.dispatch", "events": [event]}
        messages = [{**message, "e": "bench", "n": n} for n in range(1, events + 1)]
        started = time.perf_counter()
        for numbered in messages:
            hub._dispatch(numbered)
        result["dispatch_us"] = (time.perf_counter() - started) / events * 1e6
        assert all(s.qsize() == events for s in subscriptions), "dispatch dropped events"
    client = redis.asyncio.Redis.from_url(os.environ["REDIS_URL"])
    keys = [key async for key in client.scan_iter(f"{settings.CHANNEL_LAYER_PREFIX}*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    return result


def child(events: int, subs: int) -> None:
    import asyncio

    import django

    django.setup()
    print(json.dumps(asyncio.run(_measure(events, subs))))


def run_child(checkout: Path, args) -> dict[str, float]:
    """Run this script as a child importing `streams` from `checkout`; return its figures."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="mission_control.settings.base",
        REDIS_URL=args.redis_url,
        CHANNEL_LAYER_PREFIX=f"mcbenchhub{os.getpid()}",
        PYTHONPATH=str(checkout),
        LOG_LEVEL="WARNING",
    )
    command = [sys.executable, __file__, "--child", "--events", str(args.events)]
    command += ["--subs", str(args.subs)]
    out = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="the other checkout")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--subs", type=int, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    if args.child:
        return child(args.events, args.subs)
    if args.before is None:
        parser.error("--before is required")
    runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
    for _ in range(args.rounds):
        runs["before"].append(run_child(args.before.resolve(), args))
        runs["after"].append(run_child(ROOT, args))
    metrics = [
        ("publish_us", "publish_many, µs per call"),
        ("end_to_end_per_s", "events/s end to end"),
        ("dispatch_us", f"dispatch to {args.subs} subscribers, µs"),
    ]
    print(
        f"\nHub hot path: {args.events} events, {args.subs} local subscribers, "
        f"{args.rounds} alternating rounds (best round, then median)\n"
    )
    print("| measure | before best | after best | ratio | before median | after median | ratio |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for key, label in metrics:
        pick = max if key.endswith("per_s") else min
        best = [pick(r[key] for r in runs[side]) for side in ("before", "after")]
        median = [statistics.median(r[key] for r in runs[side]) for side in ("before", "after")]
        print(
            f"| {label} | {best[0]:,.1f} | {best[1]:,.1f} | {best[1] / best[0]:.2f} "
            f"| {median[0]:,.1f} | {median[1]:,.1f} | {median[1] / median[0]:.2f} |"
        )


if __name__ == "__main__":
    main()
