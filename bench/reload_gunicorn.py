"""gunicorn as the process manager for bench/reload.py: the same nginx, its workers uvicorn's.

GunicornStack is testing/stack.py's ProductionStack with gunicorn + uvicorn-worker
in place of `uvicorn --workers`: the same database, seed, environment and
deploy/nginx.conf (rendered by scripts/serve.py's own function, so nginx proxies
to the same socket path), and the worker options that gunicorn can pass on.
The replacements are what an operator of gunicorn would do:

- sighup: gunicorn's reload. It forks every new worker and at once sends SIGTERM
  to the old ones, without waiting for the new ones to serve.
- ttin_ttou: one at a time by hand. TTIN adds a worker; once it answers
  /healthz, TTOU makes gunicorn stop its oldest worker; repeat per worker.
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

from scripts import serve
from testing.stack import ProductionStack

# What scripts/serve.py gives uvicorn that gunicorn can pass on: graceful stop,
# forwarded headers. `--ws-max-size` and `--timeout-graceful-shutdown` have no
# gunicorn option (uvicorn-worker would need a subclass); the bench sends small frames.
GUNICORN_OPTIONS = [
    "--worker-class",
    "uvicorn_worker.UvicornWorker",
    "--graceful-timeout",
    str(serve.GRACEFUL_SECONDS),
    "--forwarded-allow-ips",
    "*",
    "--log-level",
    "warning",
]


class GunicornStack(ProductionStack):
    """nginx + gunicorn with N uvicorn workers on the socket deploy/nginx.conf proxies to."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.processes: list[subprocess.Popen] = []
        self.gunicorn: subprocess.Popen | None = None

    @property
    def socket_path(self) -> Path:
        return self.run_dir / "uvicorn.sock"  # the name deploy/nginx.conf's upstream uses

    def start(self, timeout: float = 120.0) -> GunicornStack:
        self.create_database()
        env = self.env()
        env["DJANGO_SETTINGS_MODULE"] = serve.SETTINGS
        env.setdefault("IMAGE_ACCEL_REDIRECT", "true")
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput", "-v", "0")
        self.run_dir.mkdir(parents=True, mode=0o700)
        (self.run_dir / "nginx-tmp").mkdir()
        conf = self.run_dir / "nginx.conf"
        conf.write_text(
            serve.render_nginx_conf(
                run_dir=self.run_dir,
                port=self.port,
                static_root=Path(env["STATIC_ROOT"]).resolve(),
                media_root=Path(env["MEDIA_ROOT"]).resolve(),
            )
        )
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed below, kept by the children
        self.gunicorn = gunicorn = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "mission_control.asgi:application",
                "--bind",
                f"unix:{self.socket_path}",
                "--workers",
                str(self.workers),
                *GUNICORN_OPTIONS,
            ],
            cwd=serve.ROOT,
            env=env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
        self.processes.append(gunicorn)
        try:
            serve.wait_for_workers(
                self.socket_path,
                path="/healthz",
                workers=self.workers,
                timeout=timeout,
                proc=gunicorn,
            )
            nginx = serve.find_nginx()
            nginx_cmd = [nginx, "-p", str(self.run_dir), "-c", str(conf)]
            self.processes.insert(
                0,
                subprocess.Popen(
                    [*nginx_cmd, "-e", str(self.run_dir / "nginx-error.log")],
                    cwd=self.run_dir,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                ),
            )
            deadline = time.monotonic() + 10
            while not _answers(f"{self.url}/healthz"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nginx did not answer:\n{self.log()}")
                time.sleep(0.05)
        except BaseException:
            self.stop()
            raise
        finally:
            log.close()
        self.seed()
        return self

    def supervisor(self) -> psutil.Process:
        return psutil.Process(self.gunicorn.pid)

    def stop(self) -> None:
        """Stop nginx and gunicorn as serve.py stops its own; then the base cleanup."""
        serve.stop(self.processes, serve.STOP_TIMEOUT)
        self.processes.clear()
        super().stop()


def _answers(url: str, uds: Path | None = None) -> int | None:
    """Return the pid of the worker answering GET `url` (/healthz), or None."""
    transport = httpx.HTTPTransport(uds=str(uds)) if uds else None
    with (
        contextlib.suppress(httpx.HTTPError, ValueError, KeyError),
        httpx.Client(transport=transport, timeout=2) as client,
    ):
        response = client.get(url)
        if response.status_code == 200:
            return response.json()["worker"]
    return None


def wait_replaced(stack: ProductionStack, old: set[int], timeout: float = 120) -> None:
    """Wait until no old worker runs, as many new ones do and /healthz answers through nginx."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        current = stack.worker_pids()
        if len(current) == len(old) and not (current & old) and _answers(f"{stack.url}/healthz"):
            return
        time.sleep(0.05)
    raise RuntimeError(f"the workers were not replaced within {timeout:.0f}s")


def sighup(stack: GunicornStack) -> float:
    """gunicorn's own reload (SIGHUP); return how long until every worker was new."""
    old = stack.worker_pids()
    started = time.monotonic()
    os.kill(stack.supervisor().pid, signal.SIGHUP)
    wait_replaced(stack, old)
    return time.monotonic() - started


def ttin_ttou(stack: GunicornStack, timeout: float = 60) -> float:
    """Replace the workers one at a time with TTIN / TTOU; return how long it took."""
    master = stack.supervisor().pid
    old = stack.worker_pids()
    started = time.monotonic()
    for _ in old:
        before = stack.worker_pids()
        os.kill(master, signal.SIGTTIN)
        deadline = time.monotonic() + timeout
        new: set[int] = set()
        # The new worker serves once it answers on the shared socket (the kernel
        # hands each connection to one of the workers waiting in accept); the Host is
        # one of ALLOWED_HOSTS, or Django answers 400.
        while not new or _answers("http://localhost/healthz", stack.socket_path) not in new:
            if time.monotonic() > deadline:
                raise RuntimeError(f"no new worker served within {timeout:.0f}s")
            new = stack.worker_pids() - before
            time.sleep(0.02)
        os.kill(master, signal.SIGTTOU)  # gunicorn stops its oldest worker
        deadline = time.monotonic() + timeout
        while stack.worker_pids() & old == before & old:
            if time.monotonic() > deadline:
                raise RuntimeError(f"TTOU stopped no old worker within {timeout:.0f}s")
            time.sleep(0.05)
    wait_replaced(stack, old)
    return time.monotonic() - started
