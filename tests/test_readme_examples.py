"""The README's terminal examples run as written against a real server on fresh demo data.

Every ```bash and ```python block of the README that talks to `localhost:8000`
is run in one shell, in a folder that looks like the checkout (`.venv`,
`manage.py`, `docs/`), against a daphne process on the test database after
`seed_demo`. Only what cannot run unattended is changed, and said here: the
port, `--max-time` for the endless SSE `curl -N`, and `wscat` (interactive, and
not installed) prints its URL, which the test then opens with a WebSocket client.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.management import call_command
from websockets.sync.client import connect

from accounts.services import token_create
from rover.models import RoverImage

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK = re.compile(r"^```(bash|python)\n(.*?)^```", re.MULTILINE | re.DOTALL)
WSCAT = re.compile(r'^wscat -c (".*")$', re.MULTILINE)


def readme_examples() -> tuple[list[str], list[str]]:
    """Return the README's bash and python blocks that use the local server."""
    bash, python = [], []
    for language, body in BLOCK.findall(README.read_text()):
        if "localhost:8000" in body or "create_token" in body:
            (bash if language == "bash" else python).append(body)
    return bash, python


def as_test_script(blocks: list[str], port: int) -> str:
    script = "\n".join(blocks).replace("localhost:8000", f"127.0.0.1:{port}")
    script = script.replace("curl -N ", "curl -N --max-time 2 ")
    script = re.sub(r"^(curl -N .*)$", r"\1 || [ $? -eq 28 ]", script, flags=re.MULTILINE)
    return WSCAT.sub(r"printf 'wscat %s\\n' \1", script)


def checkout_like(folder: Path) -> None:
    """Make `folder` look like the checkout for the examples' relative paths."""
    (folder / ".venv").symlink_to(Path(sys.prefix))
    (folder / "manage.py").symlink_to(ROOT / "manage.py")
    (folder / "docs").symlink_to(ROOT / "docs")


def test_readme_examples_run_as_written(server_process, tmp_path, settings):
    settings.DEBUG = True  # seed_demo as `make run` runs it (with its administrator)
    call_command("seed_demo", stdout=io.StringIO())
    newest = RoverImage.objects.order_by("-captured_at", "-id").first()
    seeded = Path(newest.file.path).read_bytes()
    server = server_process()
    bash, python = readme_examples()
    joined = "\n".join(bash)
    for needle in (
        "create_token",
        "/stream/rover-image",
        "/download",
        "file=@",
        "wscat",
        "/metrics",
    ):
        assert needle in joined, f"no README example with {needle!r} found"
    assert len(python) == 1 and "tusclient" in python[0]

    checkout_like(tmp_path)
    (tmp_path / "tus_upload.py").write_text(
        python[0].replace("localhost:8000", f"127.0.0.1:{server.port}")
    )
    script = as_test_script(bash, server.port) + "\n.venv/bin/python tus_upload.py\n"
    (tmp_path / "examples.sh").write_text(script)
    run = subprocess.run(
        ["bash", "-euo", "pipefail", "examples.sh"],
        cwd=tmp_path,
        env=server.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.log()}"

    assert (tmp_path / "received_image.jpg").read_bytes() == seeded
    assert (tmp_path / "image.jpg").read_bytes() == seeded
    assert "retry: 2000" in run.stdout  # the SSE feed answered
    assert "mc_stream_events_published_total" in run.stdout  # /metrics, as the admin
    uploaded = json.loads(run.stdout[run.stdout.index('{"id"') :].splitlines()[0])
    assert uploaded["camera"] == "navcam"
    sample = hashlib.sha256((ROOT / "docs" / "frame.jpg").read_bytes()).hexdigest()
    assert uploaded["sha256"] == sample
    # tuspy raises on any refused request, so the script's exit status covers the tus upload.

    url = re.search(r"^wscat (\S+)$", run.stdout, re.MULTILINE)
    assert url, run.stdout
    with connect(url.group(1), open_timeout=10) as socket:
        first = json.loads(socket.recv(timeout=10))
    assert first["type"] == "history"


def test_metrics_are_refused_to_the_demo_operator(client, db):
    """The README: `/metrics` needs rover.view_telemetryframe, which `operator` has not got."""
    call_command("seed_demo", stdout=io.StringIO())
    operator = get_user_model().objects.get(username="operator")
    token = token_create(user=operator)[1]
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 403
