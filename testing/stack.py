"""The production stack for tests and benchmarks: `scripts/serve.py` (what `make serve` runs).

Each stack gets its own PostgreSQL database (`test_mc_stack_<run>_<n>`), Redis key
prefix, run directory, media folder and port, so parallel test runs and other
engineers' stacks never collide; `stop()` removes all of them again.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import psutil
import psycopg
import redis

from testing.servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SERVE = ROOT / "scripts" / "serve.py"
_numbers = itertools.count(1)

SEED = """
import json
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from accounts.services import token_create
from comms.models import Membership, Team
from rover.models import Rover

User = get_user_model()
team = Team.objects.create(name="Ops", slug="ops")
Rover.objects.create(slug="curiosity", name="Curiosity")
tokens = {}
for name in ("rover", "alice", "bob", "carol"):
    user = User.objects.create_user(username=name, password="pw-123456")
    if name == "rover":
        for codename in ("add_telemetryframe", "add_roverimage"):
            user.user_permissions.add(Permission.objects.get(codename=codename))
    else:
        Membership.objects.create(team=team, user=user)
    tokens[name] = token_create(user=user)[1]
print("TOKENS=" + json.dumps(tokens))
"""


def post_login(client: httpx.Client, forwarded_for: str, password: str) -> int:
    """Log in as SEED's alice through the real form (its CSRF token included); return the status.

    `forwarded_for` is sent as X-Forwarded-For, for the tests of the login limit behind nginx.
    The POST carries an `Origin` as a browser's does (scheme, host and port), which Django's
    CSRF check compares with the Host the request arrived with.
    """
    headers = {"X-Forwarded-For": forwarded_for}
    page = client.get("/accounts/login/", headers=headers)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
    form = {"username": "alice", "password": password, "csrfmiddlewaretoken": csrf}
    origin = str(client.base_url).rstrip("/")
    post = client.post("/accounts/login/", data=form, headers={**headers, "Origin": origin})
    return post.status_code


def still_running(pids: set[int]) -> list[str]:
    """Return which of `pids` still run (zombies count as gone), each with its command."""
    running = []
    for pid in sorted(pids):
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                running.append(f"{pid} {' '.join(process.cmdline())[:120]}")
    return running


class ProductionStack:
    """nginx + N uvicorn workers started through scripts/serve.py, on a throwaway database."""

    def __init__(
        self,
        *,
        postgres_url: str,
        redis_url: str,
        workers: int = 2,
        through_make: bool = False,
        **env: str,
    ):
        run_id = os.environ.get("MC_TEST_RUN_ID", str(os.getpid()))
        number = next(_numbers)
        self.workers = workers
        # Started as an operator does (`make serve`: make is then the process signalled),
        # or as scripts/serve.py alone (the default: no make in between).
        self.through_make = through_make
        self.port = free_port()
        self.database = f"test_mc_stack_{run_id}_{number}"
        self.prefix = f"mcstack{run_id}x{number}"
        self.redis_url = redis_url
        self.base = Path(tempfile.mkdtemp(prefix=f"mc-stack-{run_id}-{number}-"))
        self.run_dir = self.base / "run"
        admin = urlparse(postgres_url)
        self.admin_url = postgres_url
        self.database_url = admin._replace(path=f"/{self.database}").geturl()
        self.extra_env = env
        self.proc: subprocess.Popen | None = None
        self.tokens: dict[str, str] = {}
        self.log_path = self.base / "serve.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            # The test run's switches stay out of the production stack (pytest-playwright
            # sets DJANGO_ALLOW_ASYNC_UNSAFE for the whole run).
            if key
            not in {
                "DJANGO_SETTINGS_MODULE",
                "MC_SERVER_PROCESS",
                "MC_TEST_SERVICES",
                "DATABASE_URL",
                "DJANGO_ALLOW_ASYNC_UNSAFE",
            }
        }
        env.update(
            SECRET_KEY="stack-test-secret-key-not-for-production-0123456789-abcdefghijkl",  # noqa: S106
            ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            CHANNEL_LAYER_PREFIX=self.prefix,
            # Plain HTTP on 127.0.0.1: no TLS in front of nginx here.
            SECURE_SSL_REDIRECT="false",
            SECURE_COOKIES="false",
            DATABASE_POOL_MIN="1",
            DATABASE_POOL_MAX="4",
            CHAT_RATE_MESSAGES="0",
            MEDIA_ROOT=str(self.base / "media"),
            STATIC_ROOT=str(ROOT / "staticfiles"),
            WORKERS=str(self.workers),
            PORT=str(self.port),
            RUN_DIR=str(self.run_dir),
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(sql)

    def refuse_connections(self, refuse: bool) -> None:
        """Make PostgreSQL refuse (and drop) this stack's connections, or accept them again."""
        allow = "false" if refuse else "true"
        self._admin(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS {allow}')
        if refuse:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    [self.database],
                )

    def start(self, timeout: float = 120.0) -> ProductionStack:
        self.create_database()
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed below, kept by the child
        # `-o`: the virtualenv is the one running the tests; never reinstall it from here.
        command = (
            ["make", "-o", ".venv/.installed-run", "serve"]
            if self.through_make
            else [sys.executable, str(SERVE)]
        )
        self.proc = subprocess.Popen(  # noqa: S603 - our own script
            command, cwd=ROOT, env=self.env(), stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve.py exited ({self.proc.returncode}):\n{self.log()}")
            if "Mission Control on http://" in self.log():
                break
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the stack did not start within {timeout}s:\n{self.log()}")
        self.seed()
        return self

    def create_database(self) -> None:
        """Create this stack's database afresh (empty: the start migrates it)."""
        self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        self._admin(f'CREATE DATABASE "{self.database}"')

    def seed(self) -> None:
        """Create the team, rover and users of SEED; keep their API tokens."""
        out = self.manage("shell", "-c", SEED)
        line = next(line for line in out.splitlines() if line.startswith("TOKENS="))
        self.tokens = json.loads(line.removeprefix("TOKENS="))

    def manage(self, *args: str) -> str:
        env = self.env()
        env["DJANGO_SETTINGS_MODULE"] = "mission_control.settings.production"
        done = subprocess.run(  # noqa: S603 - manage.py with the caller's arguments
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    def supervisor(self) -> psutil.Process:
        """Return the process that supervises the workers (uvicorn's, here)."""
        return psutil.Process(int((self.run_dir / "uvicorn.pid").read_text()))

    def worker_pids(self) -> set[int]:
        """Return the worker processes' pids (not the resource tracker)."""
        master = self.supervisor()
        pids = set()
        for child in master.children():
            with contextlib.suppress(psutil.Error):  # exited, not yet reaped
                if "resource_tracker" not in " ".join(child.cmdline()):
                    pids.add(child.pid)
        # With one worker uvicorn serves from its own process, unsupervised.
        return pids or {master.pid}

    def connections_per_worker(self) -> dict[int, int]:
        """Return how many client connections (from nginx) each worker holds open now."""
        socket_path = str(self.run_dir / "uvicorn.sock")
        counts = {}
        for pid in self.worker_pids():
            with contextlib.suppress(psutil.Error):
                conns = psutil.Process(pid).net_connections(kind="unix")
                counts[pid] = sum(1 for conn in conns if conn.laddr == socket_path)
        return counts

    def all_pids(self) -> set[int]:
        """Return serve.py and every process below it (nginx, uvicorn and their workers)."""
        root = psutil.Process(self.proc.pid)
        return {root.pid, *(child.pid for child in root.children(recursive=True))}

    def reload(self, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """Run what `make reload` runs, against this stack."""
        return subprocess.run(  # noqa: S603 - our own script
            [sys.executable, str(SERVE), "reload"],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def stop(self) -> None:
        """Stop the stack if it still runs and remove its database, keys and files."""
        if self.proc is not None and self.proc.poll() is None:
            pids = self.all_pids()
            self.terminate()
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                for pid in pids:
                    with contextlib.suppress(psutil.Error):
                        psutil.Process(pid).kill()
                self.proc.wait()
        with contextlib.suppress(psycopg.Error):
            self._admin(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        with contextlib.suppress(redis.RedisError):
            client = redis.Redis.from_url(self.redis_url)
            for key in client.scan_iter(match=f"{self.prefix}*", count=1000):
                client.delete(key)
            client.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self, **kwargs) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=httpx.Timeout(20), **kwargs)

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}
