"""Team rooms under load: the product against the seed and the naive tutorial, same run.

    .venv/bin/python bench/rooms.py            # 10 rooms x 100 members, 100 msg/s, 30 s
    .venv/bin/python bench/rooms.py --only hub --only seed --duration 5   # quicker

Creates the PostgreSQL database mc_bench_rooms (`--db-name`; dropped first), starts two uvicorn
workers (`--server`: another of bench/common.py's SERVER_CONFIGS) with production
settings over real Redis (`--workers 1`: one), and spreads
the client sockets over them (even sockets on worker A, odd on B) from a few client
processes. For each consumer (`/ws/comms/` = the product, `/ws/naive/` = the
tutorial's one group member per socket, and the seed: its FastAPI in-memory
`ConnectionManager` in `bench/rooms_seed.py` on one uvicorn worker, nothing stored,
no auth, frames `Message: <text>`):

1. burst (first, on idle workers): one member sends `burst` messages back to back
   into one room; throughput is deliveries / (last receipt - first send). The seed and
   the product are open at the same time and burst `--bursts` times each, in turns
   (seed, hub, hub, seed, ...), so a load that comes and goes on the shared machine
   falls on both; each burst prints the CPU the rest of the machine used meanwhile.
2. sustained: every room gets rate/rooms messages per second for `duration`
   seconds from 10 senders; every member socket must receive every message of its
   room exactly once (checked by message id and client_id); latency is send to
   receipt on each member (the body carries the sender's monotonic send time);
   "missing" means not received within 15 s of the last send.

The server logs are grepped for "over capacity" (channels-redis dropping messages).
The rate limit is switched off for the run (CHAT_RATE_MESSAGES=0).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import gc
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    SERVER_CONFIGS,
    ServerTree,
    bench_server,
    production_env,
    psql,
    recreate_database,
)
from testing.servers import ServerProcess  # noqa: E402

PYTHON = sys.executable
DB_NAME = "mc_bench_rooms"
LOG_DIR = Path("/tmp/mc-bench-rooms")
ORIGIN = "http://127.0.0.1"


def server_env(args) -> dict[str, str]:
    return production_env(
        settings_module="mission_control.settings.production",
        database=DB_NAME,
        REDIS_URL=args.redis_url,
        CHANNEL_LAYER_PREFIX="mcbenchrooms",
        CHAT_RATE_MESSAGES="0",
        LOG_LEVEL="INFO",
    )


# Setup -------------------------------------------------------------------------------


def prepare_database(args) -> dict[str, list[tuple[str, str]]]:
    """Create and migrate the bench database; return {room slug: [(username, token)]}."""
    recreate_database(DB_NAME)
    env = server_env(args)
    subprocess.run(
        [PYTHON, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True
    )
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    rooms = seed_rooms(args.rooms, args.members)
    # The tables were just bulk-loaded: analyse them now rather than let autovacuum pick
    # a moment of its own (its naptime is a minute), perhaps in the middle of a burst.
    psql("VACUUM ANALYZE", database=DB_NAME)
    return rooms


def seed_rooms(room_count: int, members: int) -> dict[str, list[tuple[str, str]]]:
    """Create `room_count` teams of `members` users with API tokens in the configured database.

    Returns {room slug: [(username, token)]}; bench/scaleout.py runs it inside a stack.
    """
    from django.contrib.auth import get_user_model
    from django.db import connections

    from accounts.models import ApiToken
    from accounts.services import token_secret_assign
    from comms.models import Membership, Team

    User = get_user_model()
    rooms: dict[str, list[tuple[str, str]]] = {}
    for r in range(room_count):
        team = Team.objects.create(name=f"Bench room {r}", slug=f"bench-{r}")
        users = User.objects.bulk_create(
            [User(username=f"r{r}m{m}", password="!") for m in range(members)]  # noqa: S106
        )
        Membership.objects.bulk_create([Membership(team=team, user=u) for u in users])
        tokens, raws = [], []
        for user in users:
            token = ApiToken(user=user, name="bench")
            raws.append(token_secret_assign(token))
            tokens.append(token)
        ApiToken.objects.bulk_create(tokens)
        rooms[team.slug] = [(u.username, raw) for u, raw in zip(users, raws, strict=True)]
    connections.close_all()
    return rooms


def start_server(args, name: str, application: str = "bench.rooms_asgi:application"):
    """Start one worker (`--server`, uvicorn by default) with production settings.

    Its log is LOG_DIR/server-<name>.log.
    """
    kind = SERVER_CONFIGS[args.server][0]
    return bench_server(
        args.server,
        application=application,
        env=server_env(args),
        log_path=LOG_DIR / f"server-{name}.log",
        extra=["--ws", args.ws] if kind == "uvicorn" else [],
    ).start()


# Client process ----------------------------------------------------------------------


class RoomSocket(asyncio.Protocol):
    """A minimal WebSocket client: unmasked server frames parsed straight off the buffer.

    1,000 sockets and 10,000 frames/s share 2 cores with the servers, so the client
    does as little per frame as it can: no per-socket task, one `startswith` to skip
    non-message frames, one `json.loads` for the rest.
    """

    def __init__(self, idx: int, room: str, request: bytes) -> None:
        self.idx = idx
        self.room = room
        self.request = request
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.open = asyncio.get_running_loop().create_future()
        # client_id -> [message id, latency of the first receipt, receipts, receipt time]
        self.got: dict[str, list] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def connection_lost(self, exc) -> None:
        if not self.open.done():
            self.open.set_exception(ConnectionError(f"socket {self.idx} lost: {exc}"))

    def data_received(self, data: bytes) -> None:
        buffer = self.buffer
        buffer += data
        if not self.open.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[:end]).split(b"\r\n", 1)[0]
            del buffer[: end + 4]
            if b" 101 " not in status:
                self.open.set_exception(ConnectionError(status.decode()))
                return
            self.open.set_result(None)
        offset, size = 0, len(buffer)
        while size - offset >= 2:
            opcode = buffer[offset] & 0x0F
            length = buffer[offset + 1] & 0x7F
            head = 2
            if length == 126:
                if size - offset < 4:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 4], "big")
                head = 4
            elif length == 127:
                if size - offset < 10:
                    break
                length = int.from_bytes(buffer[offset + 2 : offset + 10], "big")
                head = 10
            if size - offset < head + length:
                break
            payload = buffer[offset + head : offset + head + length]
            offset += head + length
            if opcode == 1:
                self.on_text(payload)
            elif opcode == 9:
                self.send_frame(0xA, bytes(payload))
        del buffer[:offset]

    def on_text(self, payload: bytearray) -> None:
        if payload.startswith(b"Message: "):
            # The seed echoes the sent frame; it has no message ids.
            now = time.monotonic()
            frame = json.loads(payload[9:])
            frame["id"] = None
        elif not payload.startswith(b'{"type":"message"'):
            return  # history, presence
        else:
            now = time.monotonic()
            frame = json.loads(payload)
        entry = self.got.get(frame["client_id"])
        if entry is None:
            self.got[frame["client_id"]] = [frame["id"], now - float(frame["body"]), 1, now]
        else:
            entry[2] += 1

    def send_frame(self, opcode: int, payload: bytes) -> None:
        from websockets.utils import apply_mask

        if self.transport.is_closing():
            return  # closed by the server (1013 when cut off): its deliveries count as missing

        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            head = bytes((0x80 | opcode, 0x80 | length))
        elif length < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + length.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + length.to_bytes(8, "big")
        self.transport.write(head + mask + apply_mask(payload, mask))

    def send_text(self, text: str) -> None:
        self.send_frame(0x1, text.encode())


def _handshake(port: int, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: {ORIGIN}\r\n\r\n"
    ).encode()


@contextlib.contextmanager
def no_collection_while_measuring():
    """Run a measured phase without the client's own garbage collections; collect before.

    A client process is forked from the bench, which holds Django and the seeded rooms.
    A full collection in the client walked all of that (100-300 ms, traced), and in a
    full run it fell inside the product's burst, not the seed's: when it comes depends
    on what the bench process had allocated before the fork, so on the phases before,
    not on the server measured. The client makes no reference cycles while it reads
    frames (dicts, lists, floats: freed by reference counting), so every server is
    now measured by clients that do not pause.
    """
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


async def client_main(conn, sockets: list[tuple[int, str, str, int]], path: str) -> None:
    # What the bench process had before the fork is never collected here (see
    # no_collection_while_measuring): a collection between phases only walks our own.
    gc.freeze()
    loop = asyncio.get_running_loop()
    limit = asyncio.Semaphore(50)

    async def open_one(idx: int, room: str, token: str, port: int) -> RoomSocket:
        request = _handshake(port, path.format(room=room) + f"?token={token}")
        async with limit:
            _, sock = await loop.create_connection(
                lambda: RoomSocket(idx, room, request), "127.0.0.1", port
            )
            await asyncio.wait_for(sock.open, 60)
        return sock

    socks = await asyncio.gather(*(open_one(*s) for s in sockets))
    by_idx = {s.idx: s for s in socks}
    conn.send(("ready", len(socks)))

    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command[0] == "close":
            break
        _, t0, sends, (prefix, expected), timeout = command
        for sock in socks:
            sock.got = {}
        with no_collection_while_measuring():
            report = await run_client_phase(socks, by_idx, t0, sends, prefix, expected, timeout)
        conn.send(("done", report))

    for sock in socks:
        sock.send_frame(0x8, (1000).to_bytes(2, "big"))
    await asyncio.sleep(0.5)
    for sock in socks:
        sock.transport.close()


async def run_client_phase(socks, by_idx, t0, sends, prefix, expected, timeout) -> dict:
    """Send this process's part of a phase, wait for every delivery; return the report."""
    monotonic = time.monotonic
    # sends: [(offset seconds, socket idx, client_id)] for this process's senders
    for offset, idx, client_id in sends:
        delay = t0 + offset - monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        body = f"{monotonic():.6f}"
        by_idx[idx].send_text(
            '{"type":"message","body":"%s","client_id":"%s"}' % (body, client_id)  # noqa: UP031
        )
    # Wait until every socket has every message of its room (or time out).
    deadline = monotonic() + timeout
    while monotonic() < deadline:
        if all(len(s.got) >= expected.get(s.room, 0) for s in socks):
            break
        await asyncio.sleep(0.05)
    return {
        s.idx: (s.room, {cid: v for cid, v in s.got.items() if cid.startswith(prefix)})
        for s in socks
    }


def client_process(conn, sockets, path) -> None:
    try:
        import uvloop

        uvloop.run(client_main(conn, sockets, path))
    except ImportError:
        asyncio.run(client_main(conn, sockets, path))


# Orchestration -----------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def run_phase(pipes, plan, expected_counts, prefix, timeout, at_start=None):
    """Send each client process its part of the plan; gather {socket: (room, got)}.

    `at_start`, if given, is called at the phase's first send (to read CPU counters).
    """
    t0 = time.monotonic() + 1.0
    for index, conn in enumerate(pipes):
        sends = [(o, idx, cid) for (o, idx, cid, proc) in plan if proc == index]
        conn.send(("run", t0, sends, (prefix, expected_counts), timeout))
    if at_start is not None:
        time.sleep(max(0.0, t0 - time.monotonic()))
        at_start()
    reports = {}
    for conn in pipes:
        kind, report = conn.recv()
        assert kind == "done"
        reports.update(report)
    return t0, reports


def check(reports, sent_by_room: dict[str, set[str]]) -> dict:
    """Check every delivery by client_id and message id; return the phase's figures."""
    latencies: list[float] = []
    delivered = missing = duplicates = wrong_id = 0
    ids: dict[str, int] = {}
    first_send, last_receipt = float("inf"), float("-inf")
    for room, got in reports.values():
        for cid, (message_id, latency, receipts, received_at) in got.items():
            if ids.setdefault(cid, message_id) != message_id:
                wrong_id += 1
            latencies.append(latency)
            delivered += 1
            duplicates += receipts - 1
            first_send = min(first_send, received_at - latency)
            last_receipt = max(last_receipt, received_at)
        missing += len(sent_by_room.get(room, set()) - set(got))
    expected = sum(len(sent_by_room.get(room, ())) for room, _ in reports.values())
    span = last_receipt - first_send
    # The burst's timeline: when the last message left the sender, when the first
    # delivery arrived, and when every message had reached at least one member.
    sends: dict[str, float] = {}
    firsts: dict[str, float] = {}
    for _room, got in reports.values():
        for cid, (_mid, latency, _n, received_at) in got.items():
            sends[cid] = received_at - latency
            firsts[cid] = min(firsts.get(cid, received_at), received_at)
    timeline = (
        (max(sends.values(), default=first_send) - first_send) * 1000,
        (min(firsts.values(), default=first_send) - first_send) * 1000,
        (max(firsts.values(), default=first_send) - first_send) * 1000,
        span * 1000,
    )
    # Worst one-second window by send time: shows whether a tail is a stall or steady.
    windows: dict[int, list[float]] = {}
    for _room, got in reports.values():
        for _mid, latency, _n, received_at in got.values():
            windows.setdefault(int(received_at - latency - first_send), []).append(latency)
    worst = max(windows.items(), key=lambda w: percentile(w[1], 0.99), default=(0, []))
    if os.environ.get("BENCH_ROOMS_SECONDS"):
        for second, values in sorted(windows.items()):
            p99 = percentile(values, 0.99) * 1000
            print(f"  second {second}: {len(values)} deliveries, p99 {p99:.1f} ms")
    return {
        "worst_second": (worst[0], percentile(worst[1], 0.99) * 1000),
        "timeline": timeline,
        "expected": expected,
        "delivered": delivered,
        "missing": missing,
        "duplicates": duplicates,
        "wrong_id": wrong_id,
        "distinct_ids": len(set(ids.values())),
        "span": span,
        "rate": delivered / span if span > 0 else float("nan"),
        "p50": percentile(latencies, 0.50) * 1000,
        "p99": percentile(latencies, 0.99) * 1000,
        "max": max(latencies, default=float("nan")) * 1000,
    }


class RoomRun:
    """One consumer's servers under the bench's clients: open, then bursts and a sustained phase.

    Member m of room r is socket r*members+m; even sockets on servers[0], odd on
    servers[1] (the same server twice for one worker). The client processes are forked
    here and hold their sockets until close(), so two consumers can be open at once and
    their bursts alternated (see alternate_bursts).
    """

    def __init__(self, args, rooms, servers: list[ServerProcess], path: str, tag: str) -> None:
        import psutil

        self.args, self.rooms, self.tag = args, rooms, tag
        self.slugs = list(rooms)
        ports = [server.port for server in servers]
        self.logs = list(dict.fromkeys(server.log_path for server in servers))
        sockets = []
        for r, (slug, members) in enumerate(rooms.items()):
            for m, (_username, token) in enumerate(members):
                idx = r * args.members + m
                sockets.append((idx, slug, token, ports[idx % 2]))
        procs_count = args.client_procs
        self.owner = {s[0]: i % procs_count for i, s in enumerate(sockets)}
        self.log_sizes = [log.stat().st_size for log in self.logs]
        ctx = multiprocessing.get_context("fork")
        self.pipes, self.procs = [], []
        for p in range(procs_count):
            parent, child = ctx.Pipe()
            mine = [s for s in sockets if self.owner[s[0]] == p]
            proc = ctx.Process(target=client_process, args=(child, mine, path), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        for conn in self.pipes:
            kind, _ = conn.recv()
            assert kind == "ready"
        self.cpu = [ServerTree(pid) for pid in dict.fromkeys(s.pid for s in servers)]
        self.clients = [psutil.Process(p.pid) for p in self.procs]

    def server_cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.cpu)

    def client_cpu(self) -> float:
        return sum(sum(p.cpu_times()[:2]) for p in self.clients)

    def cpu_now(self) -> tuple[float, float, float]:
        import psutil

        times = psutil.cpu_times()
        machine = times.user + times.system + getattr(times, "softirq", 0) + times.nice
        return self.server_cpu(), self.client_cpu(), machine

    def cpu_split(self, before: tuple[float, float, float], seconds: float) -> dict[str, float]:
        """CPU cores used since `before` by the servers, the clients and everything else."""
        now = self.cpu_now()
        server, client = now[0] - before[0], now[1] - before[1]
        return {
            "server_cpu": server / seconds,
            "client_cpu": client / seconds,
            # Everything else: Redis, PostgreSQL and whatever else runs on the machine.
            "rest_cpu": (now[2] - before[2] - server - client) / seconds,
        }

    def wait_idle(self) -> None:
        """Wait until the servers are idle (1,000 joins = 100,000 presence frames first)."""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            before = self.server_cpu()
            time.sleep(0.5)
            if self.server_cpu() - before < 0.05:
                return

    def burst(self, number: int = 0) -> dict:
        """Member 0 of room 0 sends `burst` messages back to back; every member must get them."""
        prefix = f"{self.tag}b{number}-"
        plan = [(0.0, 0, f"{prefix}{k}", self.owner[0]) for k in range(self.args.burst)]
        sent = {self.slugs[0]: {cid for _, _, cid, _ in plan}}
        start: list = []

        def at_start() -> None:
            start.extend((self.cpu_now(), time.monotonic()))

        _, reports = run_phase(
            self.pipes, plan, {self.slugs[0]: self.args.burst}, prefix, 60, at_start
        )
        # From the first send until the clients report (at most 50 ms after the last
        # delivery): what else ran on the machine meanwhile shows as "rest".
        before, started = start
        window = time.monotonic() - started
        burst = check({k: v for k, v in reports.items() if v[0] == self.slugs[0]}, sent)
        burst.update(self.cpu_split(before, window))
        burst["window"] = window
        return burst

    def sustained(self) -> dict:
        """Message k at k/rate s into room k % rooms from sender (k // rooms) % 10."""
        args = self.args
        total = int(args.rate * args.duration)
        plan, sent_by_room = [], {}
        for k in range(total):
            r = k % args.rooms
            idx = r * args.members + (k // args.rooms) % min(10, args.members)
            cid = f"{self.tag}s{k}"  # client_ids are unique per run: the store is idempotent
            plan.append((k / args.rate, idx, cid, self.owner[idx]))
            sent_by_room.setdefault(self.slugs[r], set()).add(cid)
        counts = {slug: len(cids) for slug, cids in sent_by_room.items()}
        before = self.cpu_now()
        _, reports = run_phase(self.pipes, plan, counts, f"{self.tag}s", timeout=15)
        sustained = check(reports, sent_by_room)
        sustained.update(self.cpu_split(before, args.duration))
        return sustained

    def close(self) -> int:
        """Close the clients; return how often the servers logged "over capacity"."""
        for conn in self.pipes:
            conn.send(("close",))
        for proc in self.procs:
            proc.join(30)
        over = 0
        for log, size in zip(self.logs, self.log_sizes, strict=True):
            with open(log, "rb") as f:
                f.seek(size)
                over += f.read().decode(errors="replace").lower().count("over capacity")
        return over


def measure(args, rooms, servers: list[ServerProcess], path: str, tag: str) -> dict:
    """One consumer alone: a burst first, on idle workers, then the sustained phase."""
    run = RoomRun(args, rooms, servers, path, tag)
    over = 0
    try:
        run.wait_idle()
        burst = run.burst()
        run.wait_idle()
        sustained = run.sustained()
    finally:
        over = run.close()
    return {"sustained": sustained, "burst": burst, "over_capacity": over}


def alternate_bursts(runs: dict[str, RoomRun], count: int) -> dict[str, list[dict]]:
    """`count` bursts per consumer, taking turns (ABBA...), each on idle servers.

    The machine is shared and its load comes and goes: consumers measured minutes apart
    can meet different loads (the seed's own burst ranged 44-204k/s across sessions). In
    turns, a second apart, a passing load falls on both; each burst's "rest" CPU says
    what else ran.
    """
    results: dict[str, list[dict]] = {label: [] for label in runs}
    labels = list(runs)
    for number in range(count):
        for label in labels if number % 2 == 0 else labels[::-1]:
            for run in runs.values():
                run.wait_idle()
            results[label].append(runs[label].burst(number))
    return results


def build_parser() -> argparse.ArgumentParser:
    """The bench's options; bench/servers.py takes its defaults from here too."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--rate", type=float, default=100.0, help="messages per second, total")
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--client-procs", type=int, default=2)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--only", choices=["hub", "naive", "seed"], action="append", help="repeatable"
    )
    parser.add_argument("--workers", type=int, choices=[1, 2], default=2, help="product workers")
    parser.add_argument(
        "--ws", default="auto", help="uvicorn's WebSocket implementation (all servers)"
    )
    parser.add_argument("--server", choices=sorted(SERVER_CONFIGS), default="uvicorn")
    parser.add_argument(
        "--db-name", default=DB_NAME, help="PostgreSQL database (dropped and created first)"
    )
    parser.add_argument(
        "--bursts", type=int, default=6, help="bursts per consumer, seed and hub in turns"
    )
    return parser


def main() -> None:
    global DB_NAME  # --db-name: server_env() and prepare_database() read it
    args = build_parser().parse_args()
    DB_NAME = args.db_name

    LOG_DIR.mkdir(parents=True, exist_ok=True)
    print(f"setting up {args.rooms} rooms x {args.members} members in {DB_NAME} ...", flush=True)
    rooms = prepare_database(args)
    import redis

    client = redis.Redis.from_url(args.redis_url)
    for key in client.scan_iter("mcbenchrooms*"):
        client.delete(key)
    results = {}
    consumers = (
        ("seed (FastAPI, in memory)", "/ws/comms/{room}", "s"),
        ("hub (product)", "/ws/comms/{room}/", "h"),
        ("naive tutorial", "/ws/naive/{room}/", "n"),
    )
    chosen = [c for c in consumers if not args.only or any(c[0].startswith(o) for o in args.only)]
    # The seed and the product are open together and their bursts measured in turns;
    # the naive consumer (whose sustained phase saturates the machine) runs alone after.
    together = [c for c in chosen if c[2] != "n"]
    alone = [c for c in chosen if c[2] == "n"]
    if together:
        results.update(measure_together(args, rooms, together))
    for label, path, tag in alone:
        servers: list[ServerProcess] = []
        try:
            servers = start_servers(args, tag)
            print(f"measuring {label} ...", flush=True)
            results[label] = measure(args, rooms, servers, path, tag)
        finally:
            for server in servers:
                server.stop()
    print_table(args, results)


def start_servers(args, tag: str) -> list[ServerProcess]:
    """Fresh workers for one consumer (so none inherits another's state), as two "servers"."""
    if tag == "s":
        # One process holds the seed's rooms: both "workers" are the same one.
        seed = start_server(args, "s", "bench.rooms_seed:app")
        return [seed, seed]
    servers = []
    try:
        for name in ("a", "b")[: args.workers]:
            servers.append(start_server(args, f"{tag}-{name}"))
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers * 2 if len(servers) == 1 else servers


def measure_together(args, rooms, consumers) -> dict[str, dict]:
    """Open every consumer at once, burst them in turns, then each one's sustained phase."""
    servers: dict[str, list[ServerProcess]] = {}
    runs: dict[str, RoomRun] = {}
    results: dict[str, dict] = {}
    try:
        for label, _path, tag in consumers:
            servers[label] = start_servers(args, tag)
        for label, path, tag in consumers:
            runs[label] = RoomRun(args, rooms, servers[label], path, tag)
        print(f"measuring {', '.join(runs)}: {args.bursts} bursts each, in turns ...", flush=True)
        bursts = alternate_bursts(runs, args.bursts)
        for label, run in runs.items():
            print(f"measuring {label}: sustained ...", flush=True)
            for other in runs.values():
                other.wait_idle()
            results[label] = {"burst": bursts[label][0], "bursts": bursts[label]}
            results[label]["sustained"] = run.sustained()
    finally:
        for label, run in runs.items():
            over = run.close()
            if label in results:
                results[label]["over_capacity"] = over
        for started in servers.values():
            for server in dict.fromkeys(started):
                server.stop()
    return results


def print_table(args, results) -> None:
    offered = args.rate * args.members
    print()
    print(
        f"{args.rooms} rooms x {args.members} members, {args.rate:g} msg/s "
        f"({offered:,.0f} deliveries/s offered) for {args.duration:g} s; burst {args.burst} "
        f"messages into one room; {args.workers} {args.server} worker(s) (the seed: 1), Redis, "
        f"PostgreSQL, {os.cpu_count()} cores"
    )
    header = (
        "| consumer | phase | deliveries/s | delivered/expected | missing | dup | "
        "p50 ms | p99 ms | max ms | CPU cores: servers / clients / rest | over capacity |"
    )
    print(header)
    print("|" + "---|" * 11)
    for label, r in results.items():
        for phase in ("sustained", "burst"):
            f = r[phase]
            cpu = (
                f"{f['server_cpu']:.2f} / {f['client_cpu']:.2f} / {f['rest_cpu']:.2f}"
                if "server_cpu" in f
                else ""
            )
            over = str(r["over_capacity"]) if phase == "sustained" else ""
            print(
                f"| {label} | {phase} | {f['rate']:,.0f} | {f['delivered']:,}/{f['expected']:,} "
                f"| {f['missing']} | {f['duplicates']} | {f['p50']:.1f} | {f['p99']:.1f} "
                f"| {f['max']:.1f} | {cpu} | {over} |"
            )
    for label, r in results.items():
        second, p99 = r["sustained"]["worst_second"]
        print(f"{label}: worst second of the sustained phase: second {second}, p99 {p99:.1f} ms")
    for label, r in results.items():
        last_send, first, every, last = r["burst"]["timeline"]
        print(
            f"{label}: burst, ms after the first send: last sent {last_send:.1f}, first "
            f"delivery {first:.1f}, every message delivered somewhere {every:.1f}, "
            f"last delivery {last:.1f}; CPU cores over {r['burst']['window'] * 1000:.0f} ms "
            "from the first send to the clients' report"
        )
    burst = {label.split(" ")[0]: r["burst"]["rate"] for label, r in results.items()}
    for other in ("seed", "naive"):
        if "hub" in burst and other in burst:
            print(
                f"burst throughput, hub / {other} (first bursts): "
                f"{burst['hub'] / burst[other]:.2f}x"
            )
    print_turns(results)


def print_turns(results) -> None:
    """The bursts taken in turns: each one's rate and the machine's other load, the ratios."""
    turns = {label.split(" ")[0]: r["bursts"] for label, r in results.items() if "bursts" in r}
    if not turns:
        return
    print(
        "bursts in turns, deliveries/s (CPU cores used meanwhile by the rest of the machine,"
        " for the hub its PostgreSQL and Redis included):"
    )
    for label, bursts in turns.items():
        rates = sorted(b["rate"] for b in bursts)
        each = ", ".join(f"{b['rate']:,.0f} ({b['rest_cpu']:.2f})" for b in bursts)
        print(
            f"  {label}: {each}; median {statistics.median(rates):,.0f}, best {rates[-1]:,.0f}"
            f"; every delivery: {sum(b['delivered'] for b in bursts):,}/"
            f"{sum(b['expected'] for b in bursts):,}, missing "
            f"{sum(b['missing'] for b in bursts)}, dup {sum(b['duplicates'] for b in bursts)}"
        )
    if "hub" in turns and "seed" in turns:
        ratios = [h["rate"] / s["rate"] for h, s in zip(turns["hub"], turns["seed"], strict=True)]
        best = max(b["rate"] for b in turns["hub"]) / max(b["rate"] for b in turns["seed"])
        print(
            "burst throughput, hub / seed, turn by turn: "
            + ", ".join(f"{r:.2f}x" for r in ratios)
            + f"; median {statistics.median(ratios):.2f}x; best / best {best:.2f}x"
        )


if __name__ == "__main__":
    main()
