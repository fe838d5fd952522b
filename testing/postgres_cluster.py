"""A throwaway PostgreSQL cluster of a test's own, to stop and start at will.

Fault tests must never stop the machine's shared server: this one lives in a
temporary directory, listens on its own free port (TCP on 127.0.0.1 and a Unix
socket in that directory), runs as the unprivileged `postgres` user when started
as root (initdb refuses root), and is removed by `destroy()`.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from testing.servers import HOST, free_port


def _binary(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(p) for p in (Path("/usr/local/bin") / name,) if p.exists()), None
    )


def available() -> bool:
    """Return whether initdb and pg_ctl are installed."""
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


class PostgresCluster:
    """initdb + pg_ctl in a temporary directory, on a free port."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mc-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.user: str | None = None
        self.frozen: list[int] = []
        if os.geteuid() == 0:
            self.user = "postgres"
            entry = pwd.getpwnam(self.user)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)

    @property
    def url(self) -> str:
        return f"postgres://postgres@{HOST}:{self.port}/mc"

    def _run(self, *command: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        # Fixed binaries and arguments built here; no shell.
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=60)  # noqa: S603

    def init(self) -> PostgresCluster:
        self._run(
            _binary("initdb") or "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "--no-sync",
        )
        self.start()
        self._run(
            "psql", "-h", HOST, "-p", str(self.port), "-U", "postgres", "-c", "CREATE DATABASE mc"
        )
        return self

    def start(self) -> None:
        self._run(
            _binary("pg_ctl") or "pg_ctl",
            "-D",
            str(self.data),
            "-l",
            str(self.dir / "server.log"),
            "-w",
            "-o",
            f"-p {self.port} -k {self.dir} -c listen_addresses={HOST} -c fsync=off",
            "start",
        )

    def stop(self) -> None:
        """Stop fast: open connections are cut, as in a crash or a fail-over."""
        if (self.data / "postmaster.pid").exists():
            self._run(
                _binary("pg_ctl") or "pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop"
            )

    def _children(self, parent: int) -> list[int]:
        """Return the pids of `parent`'s children."""
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                # The command may hold spaces and parentheses: the ppid follows the last ")".
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue  # the process ended meanwhile
            if int(fields[1]) == parent:
                children.append(int(stat.parent.name))
        return children

    def freeze(self) -> None:
        """Hang the server: every process stopped (SIGSTOP), its connections left open.

        The kernel still accepts connections and ACKs what clients send, so nothing
        fails on the client's side: queries just get no answer, as with a server
        whose storage stalled or a network that drops packets. The postmaster stops
        first, so that it forks no backend the list below would miss.
        """
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        os.kill(postmaster, signal.SIGSTOP)
        self.frozen = [postmaster]
        for pid in self._children(postmaster):
            os.kill(pid, signal.SIGSTOP)
            self.frozen.append(pid)

    def thaw(self) -> None:
        """Let a frozen server go on (SIGCONT), children first."""
        for pid in reversed(self.frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        self.frozen = []

    def destroy(self) -> None:
        self.thaw()
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
