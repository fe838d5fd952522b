"""bench/soak.py's verdict on memory and its printed tables."""

from __future__ import annotations

import statistics

MIB = 1024 * 1024
FLAT = 0.10  # every sample after warm-up within ±10% of the baseline


def rss_table(samples: list[tuple[float, dict[int, tuple[str, int]]]], plan) -> list[dict]:
    """Return one row per sampled process: its RSS over time and whether it stayed flat.

    Warm-up is the first `plan.warmup` of the run; the baseline is the median of the
    first three samples after it; flat means every later sample is within ±10% of it.
    """
    warmup_end = plan.warmup * plan.seconds
    series: dict[int, tuple[str, list[tuple[float, int]]]] = {}
    for at, processes in samples:
        for pid, (label, rss) in processes.items():
            series.setdefault(pid, (label, []))[1].append((at, rss))
    rows = []
    for pid, (label, points) in sorted(series.items(), key=lambda item: item[1][0]):
        after = [(at, rss) for at, rss in points if at >= warmup_end]
        if not after:
            continue
        base = statistics.median(rss for _, rss in after[:3])
        values = [rss for _, rss in after]
        drift = max(abs(rss - base) for rss in values) / base
        slope = 0.0
        if len(after) >= 2 and after[-1][0] > after[0][0]:
            slope = statistics.linear_regression([at for at, _ in after], values).slope
        rows.append(
            {
                "process": f"{label} {pid}",
                "start": points[0][1],
                "base": base,
                "min": min(values),
                "max": max(values),
                "end": values[-1],
                "drift": drift,
                "per_minute": slope * 60,
                "samples": len(points),
                "flat": drift <= FLAT,
            }
        )
    return rows


def _mib(value: float) -> str:
    return f"{value / MIB:.1f}"


def print_report(result, title: str) -> None:
    plan, counts, sse, rooms = result.plan, result.counts, result.sse, result.rooms
    print(f"\n{title}\n")
    print("| traffic | done | lost | doubled | cuts or closes |")
    print("|---|---:|---:|---:|---|")
    cuts = ", ".join(f"{k} {v}" for k, v in sorted(sse["cuts"].items())) or "none"
    closes = ", ".join(f"{k} {v}" for k, v in sorted(rooms["closes"].items())) or "none"
    print(
        f"| telemetry frames to {sse['subscribers']:,} SSE subscribers | "
        f"{sse['received']:,} of {sse['expected']:,} ({counts['frames stored']:,} frames) | "
        f"{sse['lost']:,} | {sse['doubled']:,} | streams ended {cuts} "
        f"({sse['connects']:,} connects) |"
    )
    print(
        f"| messages to {rooms['sockets']:,} sockets in {plan.rooms} rooms | "
        f"{rooms['received']:,} of {rooms['expected']:,} ({counts['messages stored']:,} "
        f"messages) | {rooms['lost']:,} | {rooms['doubled']:,} | closed {closes} |"
    )
    for name in ("ingest POSTs", "uploads", "downloads (whole)", "downloads (Range)"):
        print(f"| {name} | {counts[name]:,} | | | |")
    print("\n| error | count |")
    print("|---|---:|")
    for error, count in sorted(result.errors.items()):
        print(f"| {error} | {count:,} |")
    if not result.errors:
        print("| none | 0 |")
    print(
        f"\nRSS (MiB), sampled every {plan.sample_every:g} s; warm-up: the first "
        f"{plan.warmup * plan.seconds:g} s; baseline: the median of the 3 samples after it\n"
    )
    print(
        "| process | at start | baseline | min | max | at end | largest drift | "
        "trend after warm-up | flat (±10%) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for row in result.rss:
        print(
            f"| {row['process']} | {_mib(row['start'])} | {_mib(row['base'])} | "
            f"{_mib(row['min'])} | {_mib(row['max'])} | {_mib(row['end'])} | "
            f"{row['drift'] * 100:.1f}% | {row['per_minute'] / MIB:+.2f} MiB/min | "
            f"{'yes' if row['flat'] else 'NO'} |"
        )
    errors = sum(result.errors.values())
    verdict = "PASS" if result.passed else "FAIL"
    flat = "flat" if result.rss_flat else "NOT flat"
    print(f"\nVerdict: {verdict} ({errors:,} errors; RSS {flat} within ±10% after warm-up)")
