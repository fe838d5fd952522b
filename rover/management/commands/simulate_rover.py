"""A simulated rover posting physically plausible telemetry (and images) through the HTTP API.

The rover's model and pictures are `rover/simulator.py`; this command is the
command line and the HTTP client. Frames are held on board during a signal fade
and downlinked as a batch afterwards, like a real store-and-forward radio.
Frames go through `POST /api/rovers/<slug>/telemetry` exactly as a rover's
would; a failed post is retried with the same seqs, so the server reports
duplicates instead of storing anything twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import random
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import BaseCommand, CommandError
from django.db import connection

from accounts.services import token_create, token_user
from rover.services.telemetry import SEQ_MAX
from rover.simulator import SCENARIOS, RoverModel, navcam_jpeg

MAX_BATCH = 200
SIMULATOR_USERNAME = "simulator"
TOKENS_FILE = "simulator-tokens.json"


def simulator_data_dir() -> Path:
    """Return the user's data directory for Mission Control (XDG: ~/.local/share/...)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "mission-control"


def _database_key() -> str:
    """Name the local database, so each database keeps its own stored token."""
    db = connection.settings_dict
    label = f"{db['ENGINE']}:{db.get('HOST') or ''}:{db.get('PORT') or ''}:{db['NAME']}"
    return hashlib.sha256(label.encode()).hexdigest()[:16]


def _read_tokens(path: Path) -> dict[str, str]:
    try:
        tokens = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return tokens if isinstance(tokens, dict) else {}


def _write_tokens(path: Path, tokens: dict[str, str]) -> None:
    """Write the token file readable by its owner only, replacing it whole."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump(tokens, out)
    os.replace(temporary, path)


def simulator_token() -> str:
    """Return the 'simulator' user's API token, stored once and reused at every start.

    The raw token is only shown once by the server (it keeps the hash), so it is
    kept in the user's data directory, one per local database. A stored token
    that no longer works (revoked, its user gone or inactive) is replaced, so
    restarts do not pile up tokens in the admin.
    """
    path = simulator_data_dir() / TOKENS_FILE
    tokens = _read_tokens(path)
    key = _database_key()
    stored = tokens.get(key)
    user = token_user(stored) if isinstance(stored, str) else None
    if user is not None and user.username == SIMULATOR_USERNAME:
        return stored
    user, _ = get_user_model().objects.get_or_create(username=SIMULATOR_USERNAME)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="rover",
            codename__in=["add_telemetryframe", "add_roverimage"],
        )
    )
    raw = token_create(user=user, name="simulate_rover")[1]
    tokens[key] = raw
    _write_tokens(path, tokens)
    return raw


class Command(BaseCommand):
    help = "Simulate a rover: post plausible telemetry (and images) to a running server."

    def add_arguments(self, parser):
        parser.add_argument("--rover", default="curiosity", help="rover slug")
        parser.add_argument("--rate", type=float, default=10.0, help="frames per second")
        parser.add_argument("--url", default="http://127.0.0.1:8000", help="server base URL")
        parser.add_argument(
            "--token",
            default="",
            help="API token (default: SIMULATOR_TOKEN, else the stored simulator token)",
        )
        parser.add_argument("--wait", action="store_true", help="wait for the server to answer")
        parser.add_argument("--duration", type=float, default=0, help="stop after S seconds")
        parser.add_argument("--image-every", type=float, default=60, help="seconds; 0: never")
        parser.add_argument("--sol-seconds", type=float, default=300, help="length of a day")
        parser.add_argument("--seed", type=int, default=None, help="random seed")
        parser.add_argument(
            "--scenario",
            choices=sorted(SCENARIOS),
            default="healthy",
            help="simulated trouble: healthy (none, the default), fades (signal fades), "
            "faults (safe-mode faults) or eventful (both); each event is announced",
        )

    def handle(self, *args, **options):
        # One line per request (10 a second) would bury everything else; -v 2 shows them.
        if options["verbosity"] < 2:
            logging.getLogger("httpx").setLevel(logging.WARNING)
        rate = options["rate"]
        if not 0 < rate <= 1000:
            raise CommandError("--rate must be between 0 and 1000 frames per second.")
        base = options["url"].rstrip("/")
        slug = options["rover"]
        token = options["token"] or settings.SIMULATOR_TOKEN or simulator_token()
        self.frames_url = f"{base}/api/rovers/{slug}/telemetry"
        self.images_url = f"{base}/api/rovers/{slug}/images"
        self.client = httpx.Client(
            headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(10.0)
        )
        try:
            if options["wait"]:
                self._wait_for_server()
            self._run(options, rate)
        except KeyboardInterrupt:
            pass
        finally:
            self.client.close()

    def _wait_for_server(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.client.get(self.frames_url, params={"limit": 1})
                return
            except httpx.TransportError:
                time.sleep(0.5)
        raise CommandError(f"No server answered at {self.frames_url} within {timeout:.0f} s.")

    def _last_frame(self) -> dict[str, Any] | None:
        """Return the rover's newest frame by rover time (`?limit=1`), not the highest seq.

        One bogus seq stored (2**63 - 1) must not make every frame the simulator
        sends after it out of range.
        """
        response = self.client.get(self.frames_url, params={"limit": 1})
        if response.status_code == 404:
            raise CommandError(f"{response.json().get('detail')} (run 'manage.py seed_demo').")
        if response.status_code != 200:
            raise CommandError(f"Reading the last frame failed: {response.status_code}")
        frames = response.json()["frames"]
        return frames[-1] if frames else None

    def _run(self, options: dict[str, Any], rate: float) -> None:
        rng = random.Random(options["seed"])
        model = RoverModel(
            sol_seconds=options["sol_seconds"],
            rng=rng,
            on_event=lambda text: self.stdout.write(text),
            **SCENARIOS[options["scenario"]],
        )
        last = self._last_frame()
        seq = 0 if last is None else int(last["seq"]) + 1
        if seq > SEQ_MAX:
            raise CommandError(
                f"The rover's newest frame has seq {SEQ_MAX}, the highest there is: "
                "no seq is left to continue with (delete that frame in the admin)."
            )
        if last is not None:
            model.resume_from(last)
        self.stdout.write(
            f"Simulating '{options['rover']}' at {rate:g} Hz from seq {seq} -> {self.frames_url}"
            f" (scenario: {options['scenario']})"
        )
        period = 1.0 / rate
        image_every = options["image_every"]
        started = time.monotonic()
        next_tick = started
        next_image = started + min(image_every, 5.0) if image_every > 0 else math.inf
        pending: list[dict[str, Any]] = []
        retry_at = 0.0
        stats = {"stored": 0, "duplicates": 0, "images": 0}
        while not options["duration"] or time.monotonic() - started < options["duration"]:
            fields = model.step(period)
            pending.append({"seq": seq, "recorded_at": datetime.now(UTC).isoformat(), **fields})
            seq += 1
            now = time.monotonic()
            if not model.link_down and now >= retry_at:
                retry_at = self._flush(pending, stats, now)
            if now >= next_image and not model.link_down:
                self._send_image(seq - 1, model, rng, stats)
                next_image = now + image_every
            next_tick += period
            delay = next_tick - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -5:
                next_tick = time.monotonic()  # far behind (suspended?): do not burst
        if pending:
            self._flush(pending, stats, time.monotonic())
        self.stdout.write(
            f"Stopped: {stats['stored']} frames stored, {stats['duplicates']} duplicates, "
            f"{stats['images']} images, {len(pending)} unsent."
        )

    def _flush(self, pending: list[dict[str, Any]], stats: dict[str, int], now: float) -> float:
        """Post the oldest pending frames as one batch; return when to try again."""
        while pending:
            batch = pending[:MAX_BATCH]
            try:
                response = self.client.post(self.frames_url, json=batch)
            except httpx.TransportError as exc:
                self.stderr.write(f"post failed ({exc.__class__.__name__}); retrying")
                return now + 1.0
            if response.status_code in (200, 201):
                body = response.json()
                stats["stored"] += body["stored"]
                stats["duplicates"] += len(body["duplicates"])
                del pending[: len(batch)]
                continue
            if response.status_code in (401, 403, 404):
                raise CommandError(f"The server refused the frames: {response.text}")
            if response.status_code == 400:
                # A bug in the model, not a network problem: report and drop the batch.
                self.stderr.write(f"frames refused: {response.text[:500]}")
                del pending[: len(batch)]
                continue
            self.stderr.write(f"server answered {response.status_code}; retrying")
            return now + 1.0
        return 0.0

    def _send_image(
        self, seq: int, model: RoverModel, rng: random.Random, stats: dict[str, int]
    ) -> None:
        data = navcam_jpeg(seq=seq, sun=model.sun(), rng=rng)
        try:
            response = self.client.post(
                self.images_url,
                files={"file": (f"navcam-{seq}.jpg", data, "image/jpeg")},
                data={"camera": "navcam", "captured_at": datetime.now(UTC).isoformat()},
            )
        except httpx.TransportError:
            return
        if response.status_code in (200, 201):
            stats["images"] += 1
        elif response.status_code != 404:  # 404: a server without the image uplink
            self.stderr.write(f"image upload answered {response.status_code}")
