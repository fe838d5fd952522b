"""`make serve` stops within its deadline even when a worker never does.

README, Production, Stopping: "Whatever still runs after 25 s is killed. The tests check that
SIGTERM leaves no process behind within 30 s." (`STOP_TIMEOUT` in scripts/serve.py.) A worker
that ignores SIGTERM (stuck in a system call, a C extension, a debugger) stands here as one
stopped with SIGSTOP: it cannot run its shutdown, so uvicorn's supervisor waits for it
forever, and an SSE stream it holds keeps nginx's graceful stop waiting too. The test costs
the 25 s deadline itself: there is no shorter knob for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time

import pytest

from testing.resuming_clients import SSEFollower
from testing.stack import still_running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    # The stack always runs on PostgreSQL and Redis, whatever the pass: once is enough.
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]

STREAM = "/rovers/curiosity/telemetry/stream"
PROMISED = 30


def test_a_worker_that_never_stops_is_killed_and_the_stack_exits_within_30_seconds(
    production_stacks,
):
    stack = production_stacks(workers=2)
    pids = stack.all_pids()
    hung = min(stack.worker_pids())

    async def open_streams() -> list[SSEFollower]:
        # Streams on whichever workers the kernel picks: one on the hung worker keeps
        # nginx's graceful stop waiting as well (if none lands there, nginx stops at once).
        async with stack.client() as client:
            followers = [SSEFollower(client, STREAM, stack.auth("alice")).start() for _ in range(4)]
            for follower in followers:
                await asyncio.wait_for(follower.connected.wait(), 10)
            os.kill(hung, signal.SIGSTOP)
            started = time.monotonic()
            stack.terminate()
            try:
                returncode = await asyncio.to_thread(stack.proc.wait, PROMISED)
            except subprocess.TimeoutExpired:
                returncode = None
            took = time.monotonic() - started
            for follower in followers:
                await follower.stop()
            return returncode, took

    try:
        returncode, took = asyncio.run(open_streams())
    finally:
        # If the deadline failed, let the worker go so the stack can stop after all.
        with contextlib.suppress(ProcessLookupError):
            os.kill(hung, signal.SIGCONT)
    log = stack.log()
    print(f"serve.py exited {took:.1f} s after SIGTERM (status {returncode})")
    assert returncode is not None, f"serve.py still ran {PROMISED} s after SIGTERM:\n{log[-2000:]}"
    assert took < PROMISED, f"{took:.1f} s"
    assert returncode == 0, log[-2000:]
    assert "did not stop in time; killing it" in log, log[-2000:]
    # Every process of the stack is gone: the stopped worker, its supervisor, nginx's.
    assert still_running(pids) == []
    assert not (stack.run_dir / "uvicorn.sock").exists()
