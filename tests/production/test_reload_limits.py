"""`make reload` refuses one worker, stops at once when a new worker dies, else times out.

README, Production: "When a new worker cannot start (it exits, or does not serve within 60 s),
uvicorn keeps the old workers and logs why, and `make reload` gives up at once with status 2,
naming it. It gives up with status 2 after 180 s when old workers do not exit. With
`WORKERS=1`, uvicorn serves from one process without its supervisor, and `make reload` refuses."

The reload only talks to uvicorn's supervisor (SIGHUP, then watching its children), so a real
`uvicorn --workers N` serving a tiny app stands in for the stack here: seconds, not a stack's
20. The app's import fails while a flag file exists, so only workers started after it was made
(the reload's) cannot start; while another flag exists, a stopping worker never finishes its
lifespan shutdown. `--timeout 3` is the same bound as the 180 s default, shortened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SERVE = ROOT / "scripts" / "serve.py"

APP = """
import asyncio
import os
from pathlib import Path

if Path(os.environ["MC_BROKEN_FLAG"]).exists():
    raise RuntimeError("this worker cannot start (the test's flag file exists)")


async def lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            while Path(os.environ["MC_HANG_FLAG"]).exists():
                await asyncio.sleep(0.05)
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": str(os.getpid()).encode()})
"""


def answering_pid(socket_path: Path) -> int:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, timeout=5) as client:
        return int(client.get("http://localhost/").text)


@pytest.fixture
def workers(tmp_path):
    """Start `uvicorn --workers N` as serve.py does; yield a function that starts it."""
    started: list[subprocess.Popen] = []

    def start(count: int) -> tuple[subprocess.Popen, Path]:
        (tmp_path / "tiny_app.py").write_text(APP)
        run_dir = tmp_path / "run"
        run_dir.mkdir()
        socket_path = run_dir / "uvicorn.sock"
        env = {
            **os.environ,
            "MC_BROKEN_FLAG": str(tmp_path / "broken"),
            "MC_HANG_FLAG": str(tmp_path / "hang"),
            "PYTHONPATH": str(tmp_path),
        }
        proc = subprocess.Popen(
            [
                *(sys.executable, "-m", "uvicorn", "tiny_app:app", "--uds", str(socket_path)),
                *("--workers", str(count), "--timeout-worker-healthcheck", "60"),
            ],
            cwd=tmp_path,
            env=env,
            start_new_session=True,
        )
        started.append(proc)
        (run_dir / "uvicorn.pid").write_text(str(proc.pid))
        # Every worker serving (they accept on one socket: which one answers is the kernel's
        # choice): a worker still importing the app when the flag is made could not start.
        answered: set[int] = set()
        deadline = time.monotonic() + 30
        while len(answered) < count:
            assert time.monotonic() < deadline, f"{len(answered)} of {count} workers answered"
            with contextlib.suppress(httpx.HTTPError):
                answered.add(answering_pid(socket_path))
            time.sleep(0.02)
        return proc, run_dir

    yield start
    (tmp_path / "hang").unlink(missing_ok=True)
    for proc in started:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def worker_pids(proc: subprocess.Popen) -> set[int]:
    pids = set()
    for child in psutil.Process(proc.pid).children():
        with contextlib.suppress(psutil.Error):  # exited, not yet reaped
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(
                child.cmdline()
            ):
                pids.add(child.pid)
    return pids


def reload(run_dir: Path, *args: str, within: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SERVE), "reload", "--run-dir", str(run_dir), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=within,
    )


def test_reload_refuses_one_worker_and_leaves_it_serving(workers):
    proc, run_dir = workers(1)
    done = reload(run_dir)
    assert done.returncode == 2, done.stderr
    assert "make reload needs WORKERS=2 or more" in done.stderr
    # The lone worker was not sent SIGHUP (which would end it): it still serves.
    assert proc.poll() is None
    assert answering_pid(run_dir / "uvicorn.sock") == proc.pid


def test_reload_gives_up_at_once_when_a_new_worker_cannot_start(workers, tmp_path):
    """The new worker exits at its import; uvicorn aborts the restart and keeps the old
    workers. `make reload` says so with status 2 at once, not after its 180 s timeout."""
    proc, run_dir = workers(2)
    old = worker_pids(proc)
    (tmp_path / "broken").touch()
    started = time.monotonic()
    done = reload(run_dir, within=30)
    took = time.monotonic() - started
    assert done.returncode == 2, done.stderr
    assert "exited during the reload" in done.stderr, done.stderr
    assert took < 15, f"{took:.1f} s"
    assert worker_pids(proc) == old
    # uvicorn aborted the restart: the old workers serve on, and nothing else does.
    assert {answering_pid(run_dir / "uvicorn.sock") for _ in range(20)} <= old


def test_reload_gives_up_with_status_2_when_an_old_worker_does_not_exit(workers, tmp_path):
    """The first new worker serves, but the old one it replaces never finishes stopping:
    uvicorn waits for it, and `make reload` gives up after its timeout with status 2."""
    proc, run_dir = workers(2)
    old = worker_pids(proc)
    (tmp_path / "hang").touch()
    done = reload(run_dir, "--timeout", "3")
    assert done.returncode == 2, done.stderr
    assert "reload did not finish within 3s; old workers still running" in done.stderr
    assert "exited during the reload" not in done.stderr
    # The hung worker and the one not yet replaced are still there, beside the new one.
    assert old <= worker_pids(proc)
    assert answering_pid(run_dir / "uvicorn.sock") in worker_pids(proc)
