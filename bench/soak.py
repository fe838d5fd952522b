"""Soak: the production stack under every kind of traffic at once, for minutes.

    .venv/bin/python bench/soak.py                  # 10 minutes, the full load
    .venv/bin/python bench/soak.py --minutes 1 --subscribers 200 --sockets 100   # a quick look

The stack is started by scripts/serve.py, exactly as `make serve` runs it (nginx
in front of 2 uvicorn workers over PostgreSQL and Redis), on its own database and
Redis prefix (testing/stack.py), and stopped afterwards. At once, through nginx:

- `--subscribers` SSE subscribers on the rover's telemetry stream (bench/telemetry.py's
  client, resuming by Last-Event-ID on any cut; one process);
- `--sockets` WebSocket members spread over `--rooms` team rooms they belong to
  (testing/resuming_clients.py's RoomMember, resuming on any close; one process), one
  member of each room sending, `--messages` per second in all;
- the rover ingesting one frame per POST at `--hz`;
- `--downloaders` clients downloading images, whole and by a random Range, each
  checked byte for byte; one upload (a new noise PNG, bench/images.py) every
  `--upload-every` seconds.

Afterwards every SSE subscriber must hold every ingest id exactly once, every
member every message id of its room exactly once. Errors of every kind are
counted: non-2xx answers, failed or wrong downloads and uploads, failed
connects, sockets closed 1006 or 1011, lost or doubled ids, a worker replaced,
ERROR lines and tracebacks in the workers' log, and nginx's error log at
`[error]` or worse. The RSS of every worker and nginx process is sampled every
`--sample-every` seconds. Warm-up is the first 20% of the run; the baseline is the
median of the first three samples after it, and RSS is flat when every later
sample is within ±10% of it. Exit status 1 unless there are no errors and RSS is flat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.soak_clients import rooms_process, sse_process  # noqa: E402
from bench.soak_load import Load  # noqa: E402
from bench.soak_report import print_report, rss_table  # noqa: E402
from testing.stack import ProductionStack  # noqa: E402

POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/0"
STREAM = "/rovers/curiosity/telemetry/stream"
LOG_ERROR = re.compile(r" ERROR |Traceback \(most recent call last\)")
NGINX_ERROR = re.compile(r"\[(error|crit|alert|emerg)\]")

ROOMS_SEED = """
import json
from django.contrib.auth import get_user_model
from accounts.models import ApiToken
from accounts.services import token_secret_assign
from comms.models import Membership, Team

User = get_user_model()
rooms = {}
for r in range(%(rooms)d):
    team = Team.objects.create(name=f"Soak room {r}", slug=f"soak-{r}")
    users = User.objects.bulk_create(
        [User(username=f"soak{r}m{m}", password="!") for m in range(%(members)d)]
    )
    Membership.objects.bulk_create([Membership(team=team, user=u) for u in users])
    tokens = [ApiToken(user=u, name="soak") for u in users]
    rooms[team.slug] = [token_secret_assign(t) for t in tokens]
    ApiToken.objects.bulk_create(tokens)
print("ROOMS=" + json.dumps(rooms))
"""


@dataclass
class SoakPlan:
    seconds: float = 600
    subscribers: int = 1000
    sockets: int = 500
    rooms: int = 10
    hz: float = 10
    messages: float = 5
    downloaders: int = 2
    upload_every: float = 2.0
    sample_every: float = 5.0
    warmup: float = 0.2  # the first fifth of the run


@dataclass
class SoakResult:
    plan: SoakPlan
    counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    sse: dict = field(default_factory=dict)
    rooms: dict = field(default_factory=dict)
    samples: list[tuple[float, dict[int, tuple[str, int]]]] = field(default_factory=list)
    rss: list[dict] = field(default_factory=list)

    @property
    def rss_flat(self) -> bool:
        return all(row["flat"] for row in self.rss)

    @property
    def passed(self) -> bool:
        return not self.errors and self.rss_flat


def seed_rooms(stack: ProductionStack, rooms: int, members: int) -> dict[str, list[str]]:
    """Create `rooms` teams of `members` users each; return {team slug: members' tokens}."""
    out = stack.manage("shell", "-c", ROOMS_SEED % {"rooms": rooms, "members": members})
    line = next(line for line in out.splitlines() if line.startswith("ROOMS="))

    return json.loads(line.removeprefix("ROOMS="))


def _labels(stack: ProductionStack) -> dict[int, str]:
    """Name every process of the stack: the workers, nginx's, the supervisors."""
    workers = stack.worker_pids()
    labels = {}
    for pid in stack.all_pids():
        try:
            command = " ".join(psutil.Process(pid).cmdline())
        except psutil.Error:
            continue
        if pid in workers:
            labels[pid] = "uvicorn worker"
        elif "nginx: master" in command:
            labels[pid] = "nginx master"
        elif "nginx: worker" in command:
            labels[pid] = "nginx worker"
    return labels


async def sample_rss(stack: ProductionStack, result: SoakResult, t0: float, until: float):
    labels = _labels(stack)
    while True:
        now: dict[int, tuple[str, int]] = {}
        for pid, label in labels.items():
            try:
                now[pid] = (label, psutil.Process(pid).memory_info().rss)
            except psutil.Error:
                result.errors[f"{label} {pid} exited"] += 1
        result.samples.append((time.monotonic() - t0, now))
        if stack.worker_pids() != {p for p, name in labels.items() if name == "uvicorn worker"}:
            result.errors["a worker was replaced"] += 1
            labels = _labels(stack)
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(result.plan.sample_every, max(0.0, until - time.monotonic())))


async def _drive(stack, plan, result, load, rooms_pipe) -> None:
    limits = httpx.Limits(max_connections=plan.downloaders + 4)
    async with stack.client(limits=limits) as client:
        t0 = time.monotonic()
        until = t0 + plan.seconds
        rooms_pipe.send(("go", plan.seconds))
        tasks = [
            load.ingest(client, until),
            load.uploads(client, until),
            *(load.download(client, until) for _ in range(plan.downloaders)),
            sample_rss(stack, result, t0, until),
        ]
        await asyncio.gather(*tasks)


async def _room_ids(stack: ProductionStack, rooms: dict[str, list[str]]) -> dict[str, list[int]]:
    """Return every message id of each room, oldest first (the API's pages, `before=`)."""
    ids: dict[str, list[int]] = {}
    async with stack.client() as client:
        for slug, tokens in rooms.items():
            headers = {"Authorization": f"Bearer {tokens[0]}"}
            before, got = None, []
            while True:
                query = f"?limit=200&before={before}" if before else "?limit=200"
                page = await client.get(f"/api/teams/{slug}/messages{query}", headers=headers)
                page.raise_for_status()
                got[:0] = [m["id"] for m in page.json()["messages"]]
                if not page.json()["has_more"]:
                    break
                before = got[0]
            ids[slug] = got
    return ids


def _log_errors(stack: ProductionStack, result: SoakResult, log_from: int, nginx_from: int):
    """Count ERROR lines and tracebacks in the workers' log, [error] and worse in nginx's."""
    for line in stack.log()[log_from:].splitlines():
        if LOG_ERROR.search(line):
            result.errors[f"worker log: {line[:100]}"] += 1
    nginx_log = stack.run_dir / "nginx-error.log"
    text = nginx_log.read_text(errors="replace")[nginx_from:] if nginx_log.exists() else ""
    for line in text.splitlines():
        if NGINX_ERROR.search(line):
            # Drop the time stamp and connection number so alike lines add up.
            result.errors[f"nginx: {line.split('] ', 1)[-1][:100]}"] += 1


def _spawn(target, *args):
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(child, *args), daemon=True)
    process.start()
    return process, parent


async def _first_image(stack: ProductionStack, load: Load) -> None:
    """Upload the image every downloader starts with: 2 MiB of noise."""
    async with stack.client() as client:
        await load.upload(client, 512)
    if not load.images:
        raise RuntimeError(f"the first upload failed: {dict(load.errors)}")


def _tally(result: SoakResult) -> None:
    """Turn the client processes' reports into counts and errors."""
    for part, what in ((result.sse, "telemetry frames (SSE)"), (result.rooms, "room messages")):
        if part["lost"]:
            result.errors[f"{what}: lost"] += part["lost"]
        if part["doubled"]:
            result.errors[f"{what}: doubled or out of order"] += part["doubled"]
        result.errors.update(part["errors"])
    for code, count in result.rooms["closes"].items():
        if code in ("1006", "1011"):
            result.errors[f"WebSocket closed {code}"] += count


def run_soak(stack: ProductionStack, plan: SoakPlan) -> SoakResult:
    """Run the plan against a started stack; return what was counted and sampled."""
    result = SoakResult(plan=plan)
    per_room = max(1, plan.sockets // plan.rooms)
    rooms = seed_rooms(stack, plan.rooms, per_room)
    load = Load(stack, plan, result)
    asyncio.run(_first_image(stack, load))
    log_from = len(stack.log())
    nginx_log = stack.run_dir / "nginx-error.log"
    nginx_from = len(nginx_log.read_text(errors="replace")) if nginx_log.exists() else 0
    sse, sse_pipe = _spawn(sse_process, stack.port, STREAM, stack.tokens["alice"], plan.subscribers)
    members, rooms_pipe = _spawn(rooms_process, stack.ws_url, rooms, plan.messages)
    try:
        for name, pipe in (("sse", sse_pipe), ("rooms", rooms_pipe)):
            kind, info = pipe.recv()
            assert kind == "ready", kind
            print(f"{name} clients connected in {info['seconds']:.1f} s", flush=True)
        asyncio.run(_drive(stack, plan, result, load, rooms_pipe))
        kind, sent = rooms_pipe.recv()
        result.counts["messages sent"] = sent
        expected = asyncio.run(_room_ids(stack, rooms))
        sse_pipe.send(("finish", load.stored_frames))
        rooms_pipe.send(("finish", expected))
        result.sse = sse_pipe.recv()[1]
        result.rooms = rooms_pipe.recv()[1]
    finally:
        for process in (sse, members):
            process.join(30)
            if process.is_alive():
                process.kill()
    result.counts["frames stored"] = load.stored_frames
    result.counts["messages stored"] = sum(len(ids) for ids in expected.values())
    _tally(result)
    _log_errors(stack, result, log_from, nginx_from)
    result.rss = rss_table(result.samples, plan)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--sockets", type=int, default=500)
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--hz", type=float, default=10, help="frames ingested per second")
    parser.add_argument("--messages", type=float, default=5, help="room messages per second")
    parser.add_argument("--downloaders", type=int, default=2)
    parser.add_argument("--upload-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    plan = SoakPlan(
        seconds=args.minutes * 60,
        subscribers=args.subscribers,
        sockets=args.sockets,
        rooms=args.rooms,
        hz=args.hz,
        messages=args.messages,
        downloaders=args.downloaders,
        upload_every=args.upload_every,
        sample_every=args.sample_every,
    )
    stack = ProductionStack(
        postgres_url=POSTGRES,
        redis_url=REDIS,
        workers=args.workers,
        STATIC_ROOT="/tmp/mc-bench-soak-static",
        DATABASE_POOL_MAX="10",
    )
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    stack.start()
    try:
        result = run_soak(stack, plan)
    finally:
        stack.stop()
    load = os.getloadavg()
    print_report(
        result,
        f"Soak, {started}: {args.minutes:g} min through scripts/serve.py ({args.workers} uvicorn "
        f"workers + nginx, PostgreSQL, Redis): {plan.subscribers:,} SSE subscribers, "
        f"{plan.sockets:,} sockets in {plan.rooms} rooms, {plan.hz:g} Hz ingest, "
        f"{plan.messages:g} messages/s, {plan.downloaders} downloaders, one upload every "
        f"{plan.upload_every:g} s ({os.cpu_count()} cores, load average at the end "
        f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f})",
    )
    sys.exit(0 if result.passed else 1)


if __name__ == "__main__":
    main()
