"""Which ASGI server production runs: uvicorn, Granian (tuned) and gunicorn + uvicorn worker.

    .venv/bin/python bench/servers.py                       # every part, every server
    .venv/bin/python bench/servers.py --part sse --servers uvicorn granian-st

Each server of bench/common.py's SERVER_CONFIGS runs ONE worker process with
production settings over PostgreSQL and Redis, started in turn within one run
(the parts run one after another, each in its own process because each sets
Django up on its own database), through the clients of the three benchmarks:

- images (bench/images.py's curl client, its 50 MB / 200 MB noise PNGs): MB/s of one
  50 MB download, of 20 at once and of one 200 MB download; the worker's RSS growth
  during those; and a slow reader (1 MB/s) of the 200 MB image for 15 s: RSS
  growth then shows whether the server waits for the socket (back-pressure) or
  buffers what the reader cannot take.
- sse (bench/telemetry.py's client and phase): 1,000 subscribers, 10 Hz for 20 s,
  then a burst of 50 frames: deliveries/s, p50/p99 latency, lost/doubled.
- rooms (bench/rooms.py's clients): 10 rooms x 100 members on the one worker, a
  burst of 200 messages into one room (deliveries/s), then 5 s at 100 msg/s.
- shutdown: 5 SSE subscribers and 5 room sockets connected, then SIGTERM: did
  each SSE stream get `event: restart`, which close code did each socket get,
  and how long until the server exited.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import SERVER_CONFIGS, ServerTree, bench_server  # noqa: E402

PARTS = ("images", "sse", "rooms", "shutdown")
RESULT = "RESULT "
MB = 1024 * 1024


def emit(part: str, server: str, **figures) -> None:
    """Print one server's figures for the parent process to gather."""
    print(RESULT + json.dumps({"part": part, "server": server, **figures}), flush=True)


# images --------------------------------------------------------------------------------


def images_part(servers: list[str]) -> None:
    from bench import images

    # The 1 GB image adds minutes of set-up and nothing the 50 MB ones do not show here.
    images.IMAGES.pop("1GB", None)
    token, ids = images.setup()
    path = {label: f"/api/images/{pk}/download" for label, pk in ids.items()}
    env = {**os.environ, **images.ENV}
    for name in servers:
        with bench_server(name, env=env, log_path=images.WORK / f"server-{name}.log") as server:
            tree = ServerTree(server.pid)
            port = server.port
            images.measure(port, tree, path["50MB"], token, clients=1, cap=10)  # warm-up
            figures, growth = {}, 0.0
            for label, clients in (("50MB", 1), ("50MB", 20), ("200MB", 1)):
                result = images.measure(port, tree, path[label], token, clients=clients, cap=10)
                figures[f"{label}x{clients}"] = result.mbps
                growth = max(growth, result.rss_growth_mb)
            slow = images.measure(port, tree, path["200MB"], token, clients=1, cap=15, rate="1M")
            emit(
                "images",
                name,
                **figures,
                rss_growth=growth,
                rss=tree.memory_info().rss / MB,
                slow_growth=slow.rss_growth_mb,
            )


# sse -----------------------------------------------------------------------------------


def sse_args(server: str) -> argparse.Namespace:
    """bench/telemetry.py's own defaults (1,000 subscribers, 10 Hz, 20 s) on `server`."""
    from bench import telemetry

    args = telemetry.build_parser().parse_args([])
    args.server = server
    return args


def sse_part(servers: list[str]) -> None:
    from bench import telemetry

    tokens = telemetry.prepare_database(sse_args("uvicorn"))
    try:
        for name in servers:
            args = sse_args(name)
            row = asyncio.run(
                telemetry.live_phase(
                    args, tokens, name, telemetry.PRODUCT_PATH, telemetry.PRODUCT_INGEST, 1
                )
            )
            emit("sse", name, **{k: v for k, v in row.items() if k != "name"})
    finally:
        telemetry.clean_up(sse_args("uvicorn"))


# rooms ---------------------------------------------------------------------------------


def rooms_args(server: str) -> argparse.Namespace:
    """bench/rooms.py's own defaults, one worker on `server`, a 5 s sustained phase."""
    from bench import rooms

    args = rooms.build_parser().parse_args(["--workers", "1", "--duration", "5"])
    args.server = server
    return args


def rooms_part(servers: list[str]) -> None:
    from bench import rooms

    rooms.LOG_DIR.mkdir(parents=True, exist_ok=True)
    members = rooms.prepare_database(rooms_args("uvicorn"))
    for index, name in enumerate(servers):
        args = rooms_args(name)
        server = rooms.start_server(args, f"servers-{name}")
        try:
            path, tag = "/ws/comms/{room}/", f"v{index}"
            result = rooms.measure(args, members, [server, server], path, tag)
        finally:
            server.stop(timeout=15)
        burst, sustained = result["burst"], result["sustained"]
        emit(
            "rooms",
            name,
            burst_per_s=burst["rate"],
            burst_missing=burst["missing"],
            burst_dup=burst["duplicates"],
            sustained_p99=sustained["p99"],
            sustained_missing=sustained["missing"],
            server_cpu=sustained["server_cpu"],
        )


# shutdown ------------------------------------------------------------------------------


async def connect_watchers(port: int, token: str, count: int) -> list:
    """Connect `count` SSE subscribers that also note an `event: restart`."""
    from bench import telemetry
    from bench.sse_client import SSESubscriber

    class RestartWatcher(SSESubscriber):
        restart_seen = False

        def data_received(self, data: bytes) -> None:
            self.restart_seen = self.restart_seen or b"event: restart" in self.buffer + data
            super().data_received(data)

    loop = asyncio.get_running_loop()
    request = (
        f"GET {telemetry.PRODUCT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Accept: text/event-stream\r\nAuthorization: Bearer {token}\r\n\r\n"
    ).encode()
    watchers = []
    for _ in range(count):
        _, watcher = await loop.create_connection(
            lambda: RestartWatcher(request), "127.0.0.1", port
        )
        await asyncio.wait_for(watcher.ready, 30)
        watchers.append(watcher)
    return watchers


async def shutdown_one(name: str, sse_token: str, room: str, ws_tokens: list[str]) -> dict:
    """Connect 5 SSE streams and 5 room sockets, SIGTERM the server; return what they saw."""
    import websockets

    from bench import rooms, telemetry

    env = telemetry.server_env(sse_args(name))
    env["DATABASE_URL"] = rooms.server_env(rooms_args(name))["DATABASE_URL"]
    server = bench_server(
        name,
        env=env,
        log_path=telemetry.LOG_DIR / f"shutdown-{name}.log",
    ).start()
    try:
        subscribers = await connect_watchers(server.port, sse_token, 5)
        sockets = []
        for token in ws_tokens:
            sock = await websockets.connect(
                f"ws://127.0.0.1:{server.port}/ws/comms/{room}/?token={token}",
                origin="http://127.0.0.1",
            )
            await sock.recv()  # history: the consumer is running
            sockets.append(sock)
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)

        async def close_code(sock) -> int | None:
            try:
                async for _ in sock:
                    pass
            except websockets.ConnectionClosed:
                pass
            return sock.close_code

        codes = await asyncio.wait_for(
            asyncio.gather(*(close_code(s) for s in sockets)), timeout=30
        )
        deadline = time.monotonic() + 30
        while server.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        exited = time.monotonic() - started if server.proc.poll() is not None else None
        await asyncio.sleep(0.2)
        restarted = sum(s.restart_seen for s in subscribers)
        telemetry.close_all(subscribers)
        return {"sse_restart": restarted, "ws_codes": codes, "exit_s": exited}
    finally:
        server.stop(timeout=5)


def shutdown_part(servers: list[str]) -> None:
    from bench import rooms, telemetry

    # The room members come from the rooms part's database (bench/rooms.py's layout);
    # the SSE viewer from the telemetry part's: the server uses the rooms database for
    # both, so the viewer is created there too.
    members = rooms.prepare_database(rooms_args("uvicorn"))
    from django.contrib.auth import get_user_model

    from accounts.services import token_create

    viewer = get_user_model().objects.create_user("shutdown-viewer")
    sse_token = token_create(user=viewer)[1]
    from rover.models import Rover

    Rover.objects.get_or_create(slug="curiosity", defaults={"name": "Curiosity"})
    from django.db import connections

    connections.close_all()
    room, people = next(iter(members.items()))
    ws_tokens = [token for _user, token in people[:5]]
    telemetry.LOG_DIR.mkdir(parents=True, exist_ok=True)
    for name in servers:
        emit("shutdown", name, **asyncio.run(shutdown_one(name, sse_token, room, ws_tokens)))


# report --------------------------------------------------------------------------------


def run_parts(parts: list[str], servers: list[str]) -> dict[str, dict[str, dict]]:
    """Run each part in its own process; return {part: {server: figures}}."""
    results: dict[str, dict[str, dict]] = {}
    for part in parts:
        print(f"running {part} on {', '.join(servers)} ...", flush=True)
        done = subprocess.run(
            [sys.executable, __file__, "--part", part, "--in-process", "--servers", *servers],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            check=False,
        )
        for line in done.stdout.splitlines():
            if line.startswith(RESULT):
                row = json.loads(line.removeprefix(RESULT))
                results.setdefault(row.pop("part"), {})[row.pop("server")] = row
        if done.returncode:
            print(f"{part} failed (status {done.returncode})", flush=True)
    return results


def report(results: dict[str, dict[str, dict]], servers: list[str]) -> None:
    def cell(part: str, server: str, fmt) -> str:
        row = results.get(part, {}).get(server)
        return fmt(row) if row else "n/a"

    columns = [
        ("images", "50 MB x1 MB/s", lambda r: f"{r['50MBx1']:,.0f}"),
        ("images", "50 MB x20 MB/s", lambda r: f"{r['50MBx20']:,.0f}"),
        ("images", "200 MB x1 MB/s", lambda r: f"{r['200MBx1']:,.0f}"),
        ("images", "RSS growth MB", lambda r: f"{r['rss_growth']:.0f}"),
        ("images", "slow reader RSS growth MB", lambda r: f"{r['slow_growth']:.0f}"),
        ("sse", "SSE p50 / p99 ms", lambda r: f"{r['p50']:.0f} / {r['p99']:.0f}"),
        ("sse", "SSE deliveries/s", lambda r: f"{r['per_s']:,.0f}"),
        ("sse", "SSE lost / dup", lambda r: f"{r['lost']} / {r['duplicates']}"),
        ("rooms", "room burst deliveries/s", lambda r: f"{r['burst_per_s']:,.0f}"),
        ("rooms", "room burst missing", lambda r: f"{r['burst_missing']}"),
        ("shutdown", "SIGTERM: SSE restart", lambda r: f"{r['sse_restart']} of 5"),
        (
            "shutdown",
            "SIGTERM: socket close codes",
            lambda r: ",".join(sorted({str(c) for c in r["ws_codes"]})),
        ),
        (
            "shutdown",
            "SIGTERM: exited after s",
            lambda r: "no" if r["exit_s"] is None else f"{r['exit_s']:.1f}",
        ),
    ]
    columns = [c for c in columns if c[0] in results]
    print()
    print("| server | " + " | ".join(title for _, title, _ in columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for server in servers:
        cells = [cell(part, server, fmt) for part, _, fmt in columns]
        print(f"| {server} | " + " | ".join(cells) + " |")
    print(f"\n({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores)")
    for server in servers:
        kind, options = SERVER_CONFIGS[server]
        print(f"{server}: {kind} {' '.join(options)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", choices=PARTS, action="append", help="repeatable; default all")
    parser.add_argument(
        "--servers", nargs="+", choices=sorted(SERVER_CONFIGS), default=list(SERVER_CONFIGS)
    )
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    parts = args.part or list(PARTS)
    if args.in_process:
        {
            "images": images_part,
            "sse": sse_part,
            "rooms": rooms_part,
            "shutdown": shutdown_part,
        }[parts[0]](args.servers)
        return
    report(run_parts(parts, args.servers), args.servers)


if __name__ == "__main__":
    main()
