"""One kind of the soak's image traffic against a one-worker stack, sampling the worker.

    .venv/bin/python bench/rss_split.py uploads --minutes 3
    .venv/bin/python bench/rss_split.py downloads --minutes 3 --env MALLOC_ARENA_MAX=2

bench/soak.py showed the workers' RSS trending up with the image traffic (uploads
with thumbnails, whole and Range downloads) and not without it. This drives one
kind alone, faster than the soak does (`--upload-every`, `--downloaders`),
through scripts/serve.py with one uvicorn worker, and samples the worker's RSS,
open file descriptors and threads every `--sample-every` seconds. `--env NAME=VALUE`
(repeatable) sets a variable in the stack's environment, e.g. glibc's malloc
tunables, so two runs compare one change. Prints the samples and the trend after
the warm-up (the first 20%), fitted as bench/soak_report.py fits it.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak import POSTGRES, REDIS, SoakPlan  # noqa: E402
from bench.soak_load import Load  # noqa: E402
from testing.stack import ProductionStack  # noqa: E402

MIB = 1024 * 1024


@dataclass
class Counts:
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)


async def sample(pid: int, t0: float, until: float, args, out: list) -> None:
    process = psutil.Process(pid)
    every = args.sample_every
    while True:
        out.append(
            (
                time.monotonic() - t0,
                process.memory_info().rss,
                process.num_fds(),
                process.num_threads(),
            )
        )
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(every, max(0.0, until - time.monotonic())))


async def drive(stack: ProductionStack, args, load: Load, samples: list) -> None:
    async with stack.client() as client:
        await load.upload(client, 512)  # the soak's first image, 2 MiB of noise
        if not load.images:
            raise RuntimeError(f"the first upload failed: {dict(load.errors)}")
        (pid,) = stack.worker_pids()
        t0 = time.monotonic()
        until = t0 + args.minutes * 60
        tasks = [sample(pid, t0, until, args, samples)]
        if args.kind == "uploads":
            tasks.append(load.uploads(client, until))
        else:
            tasks += [load.download(client, until) for _ in range(args.downloaders)]
        await asyncio.gather(*tasks)


def trend(samples: list, warmup: float) -> tuple[float, float]:
    """Return (MiB/min after warm-up, growth in MiB from the first sample after warm-up)."""
    after = [(at, rss) for at, rss, *_ in samples if at >= warmup]
    fit = statistics.linear_regression([at for at, _ in after], [rss for _, rss in after])
    return fit.slope * 60 / MIB, (after[-1][1] - after[0][1]) / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("kind", choices=["uploads", "downloads"])
    parser.add_argument("--minutes", type=float, default=3)
    parser.add_argument("--upload-every", type=float, default=0.25, help="seconds")
    parser.add_argument("--downloaders", type=int, default=4)
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the stack")
    args = parser.parse_args()
    extra = dict(item.split("=", 1) for item in args.env)
    plan = SoakPlan(seconds=args.minutes * 60, upload_every=args.upload_every)
    counts = Counts()
    load = Load(None, plan, counts)  # the stack is set below, once it runs
    stack = ProductionStack(
        postgres_url=POSTGRES,
        redis_url=REDIS,
        workers=1,
        STATIC_ROOT=f"/tmp/mc-bench-rss-split-static-{args.kind}",
        **extra,
    )
    load.stack = stack
    samples: list[tuple[float, int, int, int]] = []
    stack.start()
    try:
        asyncio.run(drive(stack, args, load, samples))
    finally:
        stack.stop()
    print(f"\n{args.kind}, one worker, {args.minutes:g} min, env {extra or 'as serve.py sets it'}")
    print(f"done: {dict(counts.counts)}; errors: {dict(counts.errors) or 'none'}\n")
    print("| s | RSS MiB | fds | threads |\n|---:|---:|---:|---:|")
    for at, rss, fds, threads in samples[:: max(1, len(samples) // 12)] + samples[-1:]:
        print(f"| {at:.0f} | {rss / MIB:.1f} | {fds} | {threads} |")
    slope, grown = trend(samples, 0.2 * args.minutes * 60)
    print(f"\ntrend after warm-up: {slope:+.2f} MiB/min ({grown:+.1f} MiB)")


if __name__ == "__main__":
    main()
