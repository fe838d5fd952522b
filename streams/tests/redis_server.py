"""A private, throwaway redis-server for outage tests (never the shared one on 6379)."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """redis-server on a free port without persistence: a restart comes back empty."""

    def __init__(self, *options: str) -> None:
        """`options` go on redis-server's command line (`--replicaof`, `--requirepass`...)."""
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.port = _free_port()
        self.dir = tempfile.mkdtemp(prefix="mc-redis-")
        self.options = list(options)
        self.proc: subprocess.Popen | None = None
        self.paused = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        return [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self.dir,
            *self.options,
        ]

    def start(self, timeout: float = 10.0) -> RedisServer:
        # ~2 s after a SHUTDOWN the port may still be in TIME_WAIT; redis binds with
        # SO_REUSEADDR, so the same port is free again at once.
        self.proc = subprocess.Popen(
            self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}")
            time.sleep(0.02)
        raise RuntimeError("redis-server did not answer")

    def ping(self) -> bool:
        """Return whether the server answers (an AUTH-protected one answers NOAUTH)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def pause(self) -> None:
        """Hang the server (SIGSTOP): connections stay open, nothing is answered."""
        os.kill(self.proc.pid, signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        """Let a paused server go on (SIGCONT): it answers what it was sent meanwhile."""
        os.kill(self.proc.pid, signal.SIGCONT)
        self.paused = False

    def shutdown(self) -> None:
        """SHUTDOWN NOSAVE, as an operator restarting Redis; wait for the process to end."""
        if self.proc is None or self.proc.poll() is not None:
            return
        if self.paused:
            self.resume()  # a stopped process answers nothing, not even SIGTERM
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                sock.sendall(b"SHUTDOWN NOSAVE\r\n")
                sock.recv(16)
        except OSError:
            pass
        if self.proc.poll() is None:
            self.proc.terminate()  # AUTH-protected: SHUTDOWN was refused
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        self.shutdown()
        shutil.rmtree(self.dir, ignore_errors=True)


class RedisSentinel(RedisServer):
    """`redis-server --sentinel` on a free port, watching one master as `master_name`.

    A quorum of 1 and a one-second down-after, so a lone Sentinel fails over fast.
    """

    def __init__(self, master: RedisServer, master_name: str, *, auth: str = "") -> None:
        super().__init__()
        self.master_name = master_name
        lines = [
            f"port {self.port}",
            "bind 127.0.0.1",
            f"dir {self.dir}",
            f"sentinel monitor {master_name} 127.0.0.1 {master.port} 1",
            f"sentinel down-after-milliseconds {master_name} 1000",
            f"sentinel failover-timeout {master_name} 10000",
        ]
        if auth:
            lines += [f"sentinel auth-pass {master_name} {auth}", f"requirepass {auth}"]
        self.config = f"{self.dir}/sentinel.conf"
        with open(self.config, "w") as config:
            config.write("\n".join(lines) + "\n")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        return ["redis-server", self.config, "--sentinel"]


@pytest.fixture
def private_redis():
    """Start a private redis-server; the test may shut it down and start it again."""
    server = RedisServer().start()
    yield server
    server.stop()


class SentinelWatchedRedis:
    """A master, its replica and one Sentinel, all private and password-protected."""

    password = "mc-topology-secret"

    def __init__(self, master_name: str = "mc-topology") -> None:
        auth = ("--requirepass", self.password, "--masterauth", self.password)
        self.master_name = master_name
        self.master = RedisServer(*auth)
        self.replica = RedisServer(*auth, "--replicaof", "127.0.0.1", str(self.master.port))
        self.sentinel = RedisSentinel(self.master, master_name, auth=self.password)

    def start(self, timeout: float = 30.0) -> SentinelWatchedRedis:
        self.master.start()
        self.replica.start()
        self.sentinel.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            replicas = self._sentinel().sentinel_slaves(self.master_name)
            if any(r.get("master-link-status") == "ok" for r in replicas):
                return self
            time.sleep(0.1)
        raise RuntimeError("the Sentinel never saw the replica in sync")

    @property
    def environ(self) -> dict[str, str]:
        """The variables a worker needs to find the master through the Sentinel."""
        return {
            "REDIS_SENTINELS": self.sentinel.address,
            "REDIS_SENTINEL_MASTER": self.master_name,
            "REDIS_SENTINEL_PASSWORD": self.password,
            "REDIS_PASSWORD": self.password,
        }

    def _sentinel(self):
        import redis

        return redis.Redis(port=self.sentinel.port, password=self.password, socket_timeout=2)

    def master_port(self) -> int:
        """Return the port of the master the Sentinel names now."""
        return int(self._sentinel().sentinel_get_master_addr_by_name(self.master_name)[1])

    def client(self, server: RedisServer):
        import redis

        return redis.Redis(port=server.port, password=self.password, socket_timeout=2)

    def failover(self, timeout: float = 30.0) -> None:
        """SENTINEL FAILOVER; return once the Sentinel names the replica, now master of the old."""
        self._sentinel().sentinel_failover(self.master_name)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            promoted = self.client(self.replica).execute_command("ROLE")[0] == b"master"
            demoted = self.client(self.master).execute_command("ROLE")[0] == b"slave"
            if self.master_port() == self.replica.port and promoted and demoted:
                return
            time.sleep(0.1)
        raise RuntimeError("the failover did not finish")

    def stop(self) -> None:
        for server in (self.sentinel, self.replica, self.master):
            server.stop()


@pytest.fixture
def sentinel_redis():
    """Start a private master, replica and Sentinel; stop all three afterwards."""
    watched = SentinelWatchedRedis()
    try:
        yield watched.start()
    finally:
        watched.stop()


def use_redis(settings, url: str) -> None:
    """Point the test's settings (Redis hosts, channel layer) at `url`; forget built layers."""
    from channels.layers import channel_layers

    settings.REDIS_HOSTS = [url]
    settings.CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "streams.layers.RedisChannelLayer",
            "CONFIG": {"hosts": [url], "prefix": settings.CHANNEL_LAYER_PREFIX},
        }
    }
    channel_layers.backends.clear()


async def cut_off_reason(sub, timeout: float) -> str:
    """Read a hub subscription until it is cut off; return why (`resync`, ...)."""
    from streams.subscriptions import SubscriberOverflow

    async with asyncio.timeout(timeout):
        while True:
            try:
                await sub.get()
            except SubscriberOverflow:
                return sub.reason
