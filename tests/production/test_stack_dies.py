"""`make serve` when part of the stack dies on its own: the whole stack stops with status 2.

README (Production): "If a worker supervisor or nginx exits on its own, the whole
stack stops with status 2." systemd's `Restart=on-failure` and an operator's
terminal both rely on it: a stack left half-alive (nginx without workers, or
workers without nginx) serves nothing and restarts nothing. Each test kills one
part with SIGKILL (a crash or the OOM killer: no chance to clean up) and checks
that serve.py exits 2 and that no process of the stack is left.
"""

from __future__ import annotations

import signal
import subprocess

import httpx
import psutil
import pytest

from testing.stack import post_login, still_running

pytestmark = [
    pytest.mark.slow,
    pytest.mark.redis,
    pytest.mark.postgres,
    # The stack always runs on PostgreSQL and Redis, whatever the pass: once is enough.
    pytest.mark.one_pass("first", why="the stack always uses PostgreSQL and Redis"),
]

# serve.py notices a dead child within 0.2 s, then stops the rest (nginx
# gracefully, the workers with up to 10 s for what is open); far above that.
STOP_BOUND = 40


def _kill_and_wait(stack, victim: int) -> tuple[int, list[str]]:
    pids = stack.all_pids()
    assert victim in pids
    psutil.Process(victim).send_signal(signal.SIGKILL)
    try:
        returncode = stack.proc.wait(STOP_BOUND)
    except subprocess.TimeoutExpired:
        pytest.fail(f"serve.py still runs {STOP_BOUND} s after the kill:\n{stack.log()[-2000:]}")
    # Give the kernel a moment to reap what serve.py stopped last.
    for _ in range(50):
        if not still_running(pids):
            break
        psutil.wait_procs([], timeout=0.1)
    return returncode, still_running(pids)


def _nginx_master(stack) -> int:
    root = psutil.Process(stack.proc.pid)
    # nginx renames its master process ("nginx: master process ..."); its name stays.
    return next(child.pid for child in root.children() if child.name() == "nginx")


@pytest.fixture(scope="module")
def doomed_stack(production_stacks):
    """One stack for a test that needs it alive, then the test that kills its nginx."""
    return production_stacks(workers=2)


def test_a_client_cannot_reset_the_login_limit_by_forging_x_forwarded_for(doomed_stack):
    """README (Client addresses): nginx takes the address a TLS terminator on this host
    appends, and sets the workers' header itself. A guesser who forges a new first
    address with every attempt (the terminator appends the real one) is still counted
    at its own address, and locked out."""
    with httpx.Client(base_url=doomed_stack.url, timeout=10) as client:
        statuses = [
            post_login(client, f"203.0.113.{attempt}, 198.51.100.20", "wrong")
            for attempt in range(1, 13)
        ]
        assert statuses[0] == 200 and statuses[-1] == 429, statuses
        assert post_login(client, "203.0.113.99, 198.51.100.20", "pw-123456") == 429


# Kills the module's stack: keep it after every test that needs the stack alive.
def test_nginx_killed_stops_the_whole_stack_with_status_2(doomed_stack):
    stack = doomed_stack
    returncode, alive = _kill_and_wait(stack, _nginx_master(stack))
    assert returncode == 2, stack.log()[-2000:]
    assert "nginx exited" in stack.log()
    assert alive == [], alive
    assert not (stack.run_dir / "uvicorn.sock").exists()


def test_worker_supervisor_killed_stops_the_whole_stack_with_status_2(production_stacks):
    stack = production_stacks(workers=2)
    workers = stack.worker_pids()
    assert len(workers) == 2
    returncode, alive = _kill_and_wait(stack, stack.supervisor().pid)
    assert returncode == 2, stack.log()[-2000:]
    # The supervisor's workers are the stack too: orphaned, they would keep the
    # database pool and Redis connections of a stack that no longer serves.
    assert alive == [], alive
