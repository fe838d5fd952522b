"""Real ASGI server processes for the test suite and the benchmarks.

One way to start daphne or uvicorn (or, for bench/servers.py, Granian or gunicorn
with uvicorn workers) on a free port of 127.0.0.1, wait until it
listens, and stop it: the root conftest's `server_process` fixture and every
`bench/*.py` script use it. It imports neither pytest nor Django; the caller
passes the whole environment (settings module, database, Redis), so a test server
and a production-settings bench server differ only in what they are given.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal

ROOT = Path(__file__).resolve().parent.parent
APPLICATION = "mission_control.asgi:application"
HOST = "127.0.0.1"
ServerName = Literal["daphne", "uvicorn", "granian", "gunicorn"]
SERVERS = ("daphne", "uvicorn", "granian", "gunicorn")


def run_log_path(name: str) -> Path:
    """Where a test run's server named `name` logs (the run id from the test settings).

    The root conftest removes every such log of a run that passed (`run_log_path("*")`
    is its pattern), and keeps them when a test failed.
    """
    return Path(tempfile.gettempdir()) / f"mc-server-{os.environ['MC_TEST_RUN_ID']}-{name}.log"


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class ServerProcess:
    """One ASGI server process on its own port, restartable on that port.

    `options` go to the server's command line after the host and port (for example
    uvicorn's `--ws` or `--backlog`). Its output goes to `log_path`: a first start
    truncates the file, a restart appends to it, and a server that exits or does
    not listen in time raises with what it logged. `port` defaults to a free one.
    """

    def __init__(
        self,
        *,
        env: Mapping[str, str],
        log_path: Path,
        server: ServerName = "daphne",
        application: str = APPLICATION,
        options: Sequence[str] = (),
        port: int | None = None,
    ) -> None:
        if server not in SERVERS:
            raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")
        self.server = server
        self.application = application
        self.options = list(options)
        self.env = dict(env)
        self.log_path = log_path
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the server has not been started")
        return self.proc.pid

    def command(self) -> list[str]:
        if self.server == "uvicorn":
            return [
                sys.executable,
                "-m",
                "uvicorn",
                self.application,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--no-access-log",
                *self.options,
            ]
        if self.server == "granian":
            # Granian's access log is off unless asked for; the options carry its tuning.
            return [
                sys.executable,
                "-m",
                "granian",
                "--interface",
                "asgi",
                "--host",
                HOST,
                "--port",
                str(self.port),
                *self.options,
                self.application,
            ]
        if self.server == "gunicorn":
            # gunicorn as the process manager, each worker uvicorn's own server (uvicorn-worker).
            return [
                sys.executable,
                "-m",
                "gunicorn",
                "--worker-class",
                "uvicorn_worker.UvicornWorker",
                "--bind",
                f"{HOST}:{self.port}",
                *self.options,
                self.application,
            ]
        return [
            sys.executable,
            "-m",
            "daphne",
            "-b",
            HOST,
            "-p",
            str(self.port),
            *self.options,
            self.application,
        ]

    def start(self, timeout: float = 30.0) -> ServerProcess:
        """Start the server and return once its port accepts connections."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        mode = "ab" if self.proc is not None else "wb"
        with open(self.log_path, mode) as log:
            # The command is built above from fixed parts, the port and the caller's options.
            self.proc = subprocess.Popen(  # noqa: S603
                self.command(), cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.server} exited early:\n{self.log()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((HOST, self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.server} did not listen within {timeout}s:\n{self.log()}")

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the server; kill it if it has not exited after `timeout` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
