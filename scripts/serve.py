"""The production stack in the foreground: `make serve` and `make reload` call this.

    python scripts/serve.py            # checks, migrate, collectstatic, workers, nginx
    python scripts/serve.py reload     # replace the workers one at a time, nginx serving

The workers are uvicorn's own supervisor (`uvicorn --workers N`) on one Unix socket
that every worker accepts on; nginx (Debian's) proxies 127.0.0.1:$PORT to it. On
SIGHUP uvicorn starts a new worker, waits until it serves, then stops one old
worker, and so on: the socket never lacks a worker, so nginx refuses nothing.
`reload` sends that SIGHUP and returns once every old worker has exited.

SIGTERM (or Ctrl-C) stops everything within STOP_TIMEOUT seconds: nginx stops
accepting and the workers end their live streams (SSE `event: restart`,
WebSockets close 1012) so clients resume elsewhere by id.

Only the standard library, psycopg and redis-py (both in requirements.txt), and
`mission_control.redis_topology` (the same parsing of the Redis variables as the
settings, without Django) are used here, so the script runs from the product's
own virtualenv.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The same parsing as the settings (standard library only; redis-py when used).
from mission_control.redis_topology import (  # noqa: E402
    RedisTopologyError,
    describe,
    hosts_from_environ,
    sync_client,
)

NGINX_TEMPLATE = ROOT / "deploy" / "nginx.conf"
SETTINGS = "mission_control.settings.production"
STOP_TIMEOUT = 25.0
# A worker ends its streams at once; uploads in flight get this long to finish.
GRACEFUL_SECONDS = 10
# How long uvicorn waits for a new worker to serve before it aborts a reload.
WORKER_START_SECONDS = 60


class StackError(RuntimeError):
    """The stack cannot start or reload; the message says why and what to do."""


def log(message: str) -> None:
    print(f"serve: {message}", file=sys.stderr, flush=True)


# --- refusing early -------------------------------------------------------------


def require_services(env: dict[str, str]) -> None:
    """Refuse with a clear message unless the production variables are set and the services answer.

    DATABASE_URL must be PostgreSQL and REDIS_URL (or REDIS_SENTINELS) set, SECRET_KEY
    and ALLOWED_HOSTS too (the production settings need them), and both services
    must answer in 3 s: every shard, and behind Sentinel the master it names.
    """
    database_url = env.get("DATABASE_URL", "")
    try:
        redis_hosts = hosts_from_environ(env)
    except RedisTopologyError as exc:
        raise StackError(str(exc)) from exc
    if not database_url:
        raise StackError(
            "DATABASE_URL is not set. Production needs PostgreSQL, e.g. "
            "export DATABASE_URL=postgres://user:password@127.0.0.1:5432/mission"
        )
    if not database_url.startswith(("postgres://", "postgresql://")):
        scheme = database_url.split(":")[0]
        raise StackError(f"DATABASE_URL must be a PostgreSQL URL (postgres://...), not {scheme}:")
    if not redis_hosts:
        raise StackError(
            "REDIS_URL is not set. Production needs Redis for the channel layer, e.g. "
            "export REDIS_URL=redis://127.0.0.1:6379/0 (or REDIS_SENTINELS and "
            "REDIS_SENTINEL_MASTER; see the README's Redis topologies)"
        )
    if not env.get("SECRET_KEY"):
        raise StackError(
            "SECRET_KEY is not set. Production needs a long random key, e.g. "
            "export SECRET_KEY=$(python3 -c 'import secrets; print(secrets.token_urlsafe(50))')"
        )
    if not env.get("ALLOWED_HOSTS"):
        raise StackError(
            "ALLOWED_HOSTS is not set: the host names clients use, comma-separated, e.g. "
            "export ALLOWED_HOSTS=mission.example.org (127.0.0.1,localhost to try it locally)"
        )
    try:
        import psycopg

        with psycopg.connect(database_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        raise StackError(f"PostgreSQL at DATABASE_URL does not answer: {_one_line(exc)}") from exc
    for host in redis_hosts:
        try:
            client = sync_client(host, socket_connect_timeout=3, socket_timeout=3)
            try:
                client.ping()
            finally:
                client.close()
        except Exception as exc:
            where = "REDIS_SENTINELS" if isinstance(host, dict) else "REDIS_URL"
            raise StackError(
                f"Redis at {where} does not answer ({describe(host)}): {_one_line(exc)}"
            ) from exc


def require_free_port(port: int) -> None:
    """Refuse before anything starts when another program listens on nginx's port.

    nginx would find out only after the migration and the workers' start, and give
    up after five tries to bind. A program that takes the port between this check
    and nginx's start still makes the stack stop with status 2 then.
    """
    with socket.socket() as probe:
        # As nginx binds: a port left in TIME_WAIT by a stack just stopped is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError as exc:
            raise StackError(
                f"127.0.0.1:{port} is in use: set PORT to a free port ({_one_line(exc)})"
            ) from exc


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- nginx ----------------------------------------------------------------------


def render_nginx_conf(*, run_dir: Path, port: int, static_root: Path, media_root: Path) -> str:
    """Return deploy/nginx.conf with its ${NAME} placeholders filled in."""
    user_directive = ""
    if os.geteuid() == 0:
        # As root, nginx would drop its workers to `nobody`; keep the current user.
        user_directive = (
            f"user {pwd.getpwuid(os.geteuid()).pw_name} {grp.getgrgid(os.getegid()).gr_name};"
        )
    values = {
        "USER_DIRECTIVE": user_directive,
        "RUN_DIR": str(run_dir),
        "PORT": str(port),
        "STATIC_ROOT": str(static_root),
        "MEDIA_ROOT": str(media_root),
        # Uploads may reach IMAGE_MAX_BYTES plus multipart framing; 0 would be unlimited.
        "CLIENT_MAX_BODY_SIZE": str(int(os.environ.get("IMAGE_MAX_BYTES", 2 * 1024**3)) + 2**20),
    }

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise StackError(f"{NGINX_TEMPLATE}: unknown placeholder ${{{name}}}")
        return values[name]

    return re.sub(r"\$\{([A-Z_]+)\}", fill, NGINX_TEMPLATE.read_text())


def find_nginx() -> str:
    for candidate in (shutil.which("nginx"), "/usr/sbin/nginx"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise StackError("nginx is not installed: apt-get install nginx-light (Debian's nginx)")


# --- processes ------------------------------------------------------------------


def children_of(pid: int) -> set[int]:
    """Return the pids of a process's live children (the uvicorn workers), from /proc."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, ...
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z" and b"resource_tracker" not in cmdline:
            found.add(int(entry.name))
    return found


def wait_for_workers(
    socket_path: Path, *, path: str, workers: int, timeout: float, proc: subprocess.Popen
) -> None:
    """Wait until the workers answer `path` with 200 over the Unix socket."""
    import http.client
    import socket

    class UnixConnection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(2)
            self.sock.connect(str(socket_path))

    seen: set[int] = set()
    first_answer = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"the workers exited during start-up (status {proc.returncode})")
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            conn = UnixConnection("localhost")
            conn.request("GET", path)
            response = conn.getresponse()
            if response.status == 200:
                seen.add(json.loads(response.read())["worker"])
            conn.close()
        # Every worker answered, or one did and the rest had a few seconds more:
        # which worker accepts a connection is the kernel's choice.
        if seen and not first_answer:
            first_answer = time.monotonic()
        if len(seen) >= workers or (seen and time.monotonic() > first_answer + 5):
            return
        time.sleep(0.05)
    raise StackError(f"the workers did not answer {path} within {timeout:.0f}s")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop(processes: list[subprocess.Popen], timeout: float) -> None:
    """Stop nginx (SIGQUIT: graceful) and the workers (SIGTERM), SIGKILL after `timeout`.

    A living process gets the signal alone: nginx's master and uvicorn's supervisor
    stop their own children (a second SIGTERM straight to a uvicorn worker would
    force it out at once). One that died on its own (a crash, the OOM killer)
    leaves its children orphaned but still in its process group (each was started
    in a session of its own), so they get the signal instead: nginx's workers
    would keep the port, uvicorn's the database pool.
    """
    for proc in processes:
        signum = signal.SIGQUIT if proc.args[0].endswith("nginx") else signal.SIGTERM
        with contextlib.suppress(ProcessLookupError):
            if proc.poll() is None:
                os.kill(proc.pid, signum)
            else:
                os.killpg(proc.pid, signum)
    deadline = time.monotonic() + timeout
    for proc in processes:
        try:
            proc.wait(max(0.1, deadline - time.monotonic()))
            while _group_alive(proc.pid):
                if time.monotonic() > deadline:
                    raise subprocess.TimeoutExpired(proc.args, timeout)
                time.sleep(0.1)
        except subprocess.TimeoutExpired:
            log(f"{Path(proc.args[0]).name} (pid {proc.pid}) did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def serve(*, workers: int, port: int, run_dir: Path) -> int:
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = SETTINGS
    # deploy/nginx.conf has the internal locations: nginx sends image downloads.
    env.setdefault("IMAGE_ACCEL_REDIRECT", "true")
    env.setdefault("PYTHONUNBUFFERED", "1")
    require_services(env)
    nginx = find_nginx()
    python = sys.executable

    run_dir.mkdir(parents=True, exist_ok=True)
    # Only this user (and so nginx, running as this user) may reach the workers' socket,
    # whose X-Forwarded-For they trust.
    run_dir.chmod(0o700)
    (run_dir / "nginx-tmp").mkdir(exist_ok=True)
    socket_path = run_dir / "uvicorn.sock"
    # Held until this process exits: a second `make serve` on the same run directory
    # refuses at once instead of fighting over its socket and pid files.
    lock = open(run_dir / "serve.lock", "w")  # noqa: SIM115 - released at exit
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise StackError(f"a stack already runs from {run_dir} (serve.lock)") from None
    require_free_port(port)

    log("migrate")
    subprocess.run([python, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True)
    log("collectstatic")
    subprocess.run(
        [python, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
    )
    static_root, media_root = _paths_from_settings(env)

    conf = run_dir / "nginx.conf"
    conf.write_text(
        render_nginx_conf(
            run_dir=run_dir, port=port, static_root=static_root, media_root=media_root
        )
    )
    nginx_cmd = [nginx, "-p", str(run_dir), "-c", str(conf), "-e", str(run_dir / "nginx-error.log")]
    check = subprocess.run([*nginx_cmd, "-t", "-q"], capture_output=True, text=True)
    if check.returncode != 0:
        raise StackError(f"nginx refuses {conf}:\n{check.stderr.strip()}")

    socket_path.unlink(missing_ok=True)
    uvicorn_cmd = [
        python,
        "-m",
        "uvicorn",
        "mission_control.asgi:application",
        "--uds",
        str(socket_path),
        "--workers",
        str(workers),
        "--no-access-log",
        "--lifespan",
        "on",
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SECONDS),
        "--timeout-worker-healthcheck",
        str(WORKER_START_SECONDS),
        "--ws-max-size",
        "65536",
        # The socket has no peer address to check; only nginx can reach it (run_dir 0700),
        # and nginx sets X-Forwarded-For to the client's address.
        "--forwarded-allow-ips",
        "*",
    ]
    processes: list[subprocess.Popen] = []
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        # Own process groups: a terminal's Ctrl-C reaches this script only, which
        # then stops the others in order.
        workers_proc = subprocess.Popen(uvicorn_cmd, cwd=ROOT, env=env, start_new_session=True)
        processes.append(workers_proc)
        (run_dir / "uvicorn.pid").write_text(str(workers_proc.pid))
        wait_for_workers(
            socket_path,
            path="/healthz",
            workers=workers,
            timeout=WORKER_START_SECONDS,
            proc=workers_proc,
        )
        nginx_proc = subprocess.Popen(nginx_cmd, cwd=run_dir, start_new_session=True)
        processes.insert(0, nginx_proc)
        (run_dir / "serve.pid").write_text(str(os.getpid()))
        log(f"Mission Control on http://127.0.0.1:{port}/ ({workers} workers, run dir {run_dir})")
        while not stopping:
            for proc in processes:
                if proc.poll() is not None:
                    raise StackError(f"{Path(proc.args[0]).name} exited (status {proc.returncode})")
            time.sleep(0.2)
        log("stopping")
        return 0
    finally:
        stop(processes, STOP_TIMEOUT)
        for name in ("serve.pid", "uvicorn.pid"):
            (run_dir / name).unlink(missing_ok=True)
        socket_path.unlink(missing_ok=True)
        log("stopped")


def _paths_from_settings(env: dict[str, str]) -> tuple[Path, Path]:
    """Return STATIC_ROOT and MEDIA_ROOT as the production settings compute them."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings as s; "
            "print(s.STATIC_ROOT); print(s.MEDIA_ROOT)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    static_root, media_root = out.stdout.split("\n")[:2]
    return Path(static_root).resolve(), Path(media_root).resolve()


def reload(*, run_dir: Path, timeout: float) -> int:
    """Replace every worker one at a time (uvicorn SIGHUP); return when all are new."""
    pid_file = run_dir / "uvicorn.pid"
    try:
        master = int(pid_file.read_text())
        os.kill(master, 0)
    except (OSError, ValueError) as exc:
        raise StackError(f"no running stack in {run_dir} (start it with `make serve`)") from exc
    old = children_of(master)
    count = len(old)
    if count == 0:
        # `uvicorn --workers 1` runs in one process, without the supervisor that
        # replaces workers on SIGHUP (SIGHUP would end it, and the socket with it).
        raise StackError("make reload needs WORKERS=2 or more: one worker runs unsupervised")
    log(f"replacing {count} workers one at a time: {sorted(old)}")
    os.kill(master, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    # Every new worker seen so far. uvicorn aborts the reload when a new worker
    # exits (or does not serve within WORKER_START_SECONDS, then it kills it) and
    # keeps the old ones; nothing changes after that, so waiting on would only
    # end at the timeout. Polled often: a worker whose import fails lives ~1 s.
    started: set[int] = set()
    while time.monotonic() < deadline:
        if _parent_if_running(master) is None:
            raise StackError(f"the worker supervisor (pid {master}) exited during the reload")
        current = children_of(master)
        started |= current - old
        exited = sorted(pid for pid in started - current if _parent_if_running(pid) != master)
        if exited:
            raise StackError(
                f"new worker {exited} exited during the reload: a new worker that cannot "
                "start makes uvicorn keep the old workers (its log says why); workers "
                f"now: old {sorted(current & old)}, new {sorted(current - old)}"
            )
        if not (current & old) and len(current) == count:
            log(f"every worker replaced: {sorted(current)}")
            return 0
        time.sleep(0.05)
    left = sorted(children_of(master) & old)
    raise StackError(
        f"reload did not finish within {timeout:.0f}s; old workers still running: {left}"
    )


def _parent_if_running(pid: int) -> int | None:
    """Return the parent pid of a running process; None once it has exited (or is a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else int(ppid)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("command", nargs="?", default="serve", choices=["serve", "reload"])
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WORKERS", "2")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    parser.add_argument(
        "--run-dir", type=Path, default=Path(os.environ.get("RUN_DIR", ROOT / "run"))
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="reload: give up after this")
    args = parser.parse_args(argv)
    run_dir = args.run_dir.resolve()
    try:
        if args.command == "reload":
            return reload(run_dir=run_dir, timeout=args.timeout)
        if args.workers < 1:
            raise StackError("WORKERS must be at least 1")
        return serve(workers=args.workers, port=args.port, run_dir=run_dir)
    except StackError as exc:
        log(f"error: {exc}")
        return 2
    except subprocess.CalledProcessError as exc:
        log(f"error: {' '.join(map(str, exc.cmd[1:3]))} failed (status {exc.returncode})")
        return 2


if __name__ == "__main__":
    sys.exit(main())
