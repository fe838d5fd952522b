"""Before/after A/B: the three original benchmarks at an old checkout and at this one, same session.

    git worktree add --detach /work/wt/ab-old 1a77292 && ln -s $PWD/.venv /work/wt/ab-old/.venv
    .venv/bin/python bench/before_after.py --old /work/wt/ab-old --wrap /work/bin/quiet

Runs bench/telemetry.py (--skip-naive), bench/rooms.py (--only hub) and bench/images.py
as each checkout has them, interleaved (old, new, old, new, per benchmark) so that
machine noise hits both sides, each run under `--wrap` (the machine's exclusive
lock) on its own. Only how a bench is invoked is adapted: each side gets its own
PostgreSQL database and scratch directory (the old and new schemas differ, and the
images bench keeps its database between runs), set on the bench module before its
main() runs. Raw outputs go to --out; the table gives the mean of the rounds per side
and new / old per figure.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BENCHES = {
    "telemetry": ["--skip-naive"],
    "rooms": ["--only", "hub"],
    "images": [],
}

# Runs inside the checkout: point the bench module at this side's own database and
# scratch directory, then run its main() with the given arguments.
RUNNER = """
import os, sys
from pathlib import Path
sys.path.insert(0, os.getcwd())
name, side, *rest = sys.argv[1:]
os.environ["BENCH_IMAGES_DIR"] = f"/tmp/mc-ab-{side}-images"
module = __import__(f"bench.{name}", fromlist=["main"])
module.DB_NAME = f"mc_ab_{side}_{name}"
if hasattr(module, "LOG_DIR"):
    module.LOG_DIR = Path(f"/tmp/mc-ab-{side}-{name}")
if hasattr(module, "DB_URL"):
    module.DB_URL = f"postgres://postgres@127.0.0.1:5432/{module.DB_NAME}"
    module.ENV["DATABASE_URL"] = module.DB_URL
sys.argv = [f"bench/{name}.py", *rest]
module.main()
"""

NUMBER = r"([\d,]+(?:\.\d+)?)"


def num(text: str) -> float:
    return float(text.replace(",", ""))


def parse_telemetry(out: str) -> dict[str, tuple[float, str]]:
    row = re.search(r"^\| hub \(product\) \|(.*)\|$", out, re.M)[1]
    cells = [c.strip() for c in row.split("|")]
    figures = {
        "SSE 1,000 subs @ 10 Hz: deliveries/s": (num(cells[0]), "higher"),
        "SSE 1,000 subs @ 10 Hz: p50 ms": (num(cells[5]), "lower"),
        "SSE 1,000 subs @ 10 Hz: p99 ms": (num(cells[6]), "lower"),
        "SSE 1,000 subs @ 10 Hz: server CPU %": (num(cells[8].rstrip("%")), "lower"),
        "SSE 1,000 subs: RSS per subscriber KiB": (num(cells[9]), "lower"),
    }
    burst = re.search(rf"hub \(product\) {NUMBER} deliveries/s", out)
    figures["SSE burst (50 frames x 1,000 subs): deliveries/s"] = (num(burst[1]), "higher")
    idle = re.search(rf"connected in {NUMBER} s; {NUMBER} KiB RSS per idle", out)
    figures["SSE 5,000 idle: connect s"] = (num(idle[1]), "lower")
    figures["SSE 5,000 idle: RSS per subscriber KiB"] = (num(idle[2]), "lower")
    return figures


def parse_rooms(out: str) -> dict[str, tuple[float, str]]:
    figures = {}
    for phase in ("sustained", "burst"):
        row = re.search(rf"^\| hub \(product\) \| {phase} \|(.*)\|$", out, re.M)[1]
        cells = [c.strip() for c in row.split("|")]
        label = "rooms 10x100 @ 100 msg/s" if phase == "sustained" else "rooms burst 200 msgs"
        figures[f"{label}: deliveries/s"] = (num(cells[0]), "higher")
        if phase == "sustained":
            figures[f"{label}: p50 ms"] = (num(cells[4]), "lower")
            figures[f"{label}: p99 ms"] = (num(cells[5]), "lower")
            figures[f"{label}: server CPU cores"] = (num(cells[7].split("/")[0]), "lower")
    return figures


def parse_images(out: str) -> dict[str, tuple[float, str]]:
    figures = {}
    for m in re.finditer(rf"^\| (\d+) KiB \| {NUMBER} \| {NUMBER} \|$", out, re.M):
        figures[f"images chunk sweep {m[1]} KiB: 1 GB x1 MB/s"] = (num(m[2]), "higher")
    chosen = re.search(r"^chosen: (\d+) KiB", out, re.M)
    figures["images chunk chosen by the sweep (KiB)"] = (num(chosen[1]), "-")
    for m in re.finditer(r"^\| (uvicorn|daphne) \| product \| (\w+) \| (\d+) \|(.*)\|$", out, re.M):
        server, image, clients = m[1], m[2], m[3]
        cells = [c.strip() for c in m[4].split("|")]
        label = f"images {server} {image} x{clients}"
        figures[f"{label}: MB/s"] = (num(cells[0].split(" ")[0]), "higher")
        figures[f"{label}: first byte ms"] = (num(cells[1]), "lower")
    for m in re.finditer(rf"^\| (uvicorn|daphne) \| {NUMBER} \| {NUMBER} \|$", out, re.M):
        figures[f"images slow reader {m[1]}: RSS growth MB"] = (num(m[3]), "lower")
    for m in re.finditer(rf"^\| (uvicorn|daphne) \| (\w+) \| (\d+) \| {NUMBER}x \|$", out, re.M):
        figures[f"images {m[1]} {m[2]} x{m[3]}: product / seed"] = (num(m[4]), "higher")
    return figures


PARSERS = {"telemetry": parse_telemetry, "rooms": parse_rooms, "images": parse_images}


def run(checkout: Path, side: str, name: str, wrap: list[str], out_dir: Path, n: int) -> None:
    command = [*wrap, str(checkout / ".venv/bin/python"), "-c", RUNNER, name, side, *BENCHES[name]]
    print(f"running {name} at {side} ({checkout}), round {n} ...", flush=True)
    done = subprocess.run(command, cwd=checkout, capture_output=True, text=True, check=False)
    (out_dir / f"{name}-{side}-{n}.txt").write_text(done.stdout + "\n--- stderr\n" + done.stderr)
    if done.returncode:
        sys.exit(f"{name} at {side} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def table(results: dict[str, dict[str, list[dict]]]) -> None:
    print("| figure | better | old | new | new / old |")
    print("|---|---|---:|---:|---:|")
    for sides in results.values():
        for figure, (_, better) in sides["old"][0].items():
            old = [r[figure][0] for r in sides["old"]]
            new = [r[figure][0] for r in sides["new"] if figure in r]
            mean_old, mean_new = sum(old) / len(old), sum(new) / len(new)
            ratio = f"{mean_new / mean_old:.2f}" if mean_old else "-"
            digits = (
                2 if max(mean_old, mean_new) < 10 else 1 if max(mean_old, mean_new) < 100 else 0
            )
            cells = (figure, better, f"{mean_old:,.{digits}f}", f"{mean_new:,.{digits}f}", ratio)
            print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", type=Path, required=True, help="checkout of the old commit")
    parser.add_argument("--new", type=Path, default=ROOT)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--benches", nargs="+", default=list(BENCHES), choices=list(BENCHES))
    parser.add_argument("--wrap", default="", help="command each run goes through")
    parser.add_argument("--out", type=Path, default=Path("/tmp/mc-ab"))
    parser.add_argument("--parse-only", action="store_true", help="table from --out's files")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [
        (name, n, side, checkout)
        for name in args.benches
        for n in range(1, args.rounds + 1)
        for side, checkout in (("old", args.old), ("new", args.new))
    ]
    if not args.parse_only:  # every run first, so a parsing slip costs no measurement
        for name, n, side, checkout in runs:
            run(checkout, side, name, args.wrap.split(), args.out, n)
    results = {name: {"old": [], "new": []} for name in args.benches}
    for name, n, side, _ in runs:
        out = (args.out / f"{name}-{side}-{n}.txt").read_text().split("\n--- stderr\n")[0]
        results[name][side].append(PARSERS[name](out))
    print(f"\nmean of {args.rounds} interleaved rounds; old = {args.old}, new = {args.new}\n")
    table(results)


if __name__ == "__main__":
    main()
