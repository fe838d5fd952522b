"""The dashboard page, its Content-Security-Policy, the rover list and production static files."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from mission_control.csp import CONTENT_SECURITY_POLICY
from rover.tests.factories import RoverFactory

ROOT = Path(__file__).resolve().parents[2]
EXPECTED_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; "
    "frame-ancestors 'none'"
)


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict] = []
        self.inline_handlers: list[str] = []
        self.style_attrs = 0
        self._current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.inline_handlers += [name for name in attrs if name.startswith("on")]
        self.style_attrs += "style" in attrs
        if tag == "script":
            self._current = {**attrs, "text": ""}
            self.scripts.append(self._current)

    def handle_data(self, data):
        if self._current is not None:
            self._current["text"] += data

    def handle_endtag(self, tag):
        if tag == "script":
            self._current = None


@pytest.fixture
def operator(client, user_factory):
    user = user_factory("operator")
    client.force_login(user)
    return user


def test_csp_is_the_documented_policy():
    assert CONTENT_SECURITY_POLICY == EXPECTED_CSP


@pytest.mark.django_db
def test_dashboard_has_no_inline_script_and_sends_the_csp(client, operator):
    RoverFactory(slug="curiosity", name="Curiosity")
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Security-Policy"] == EXPECTED_CSP
    page = _Scripts()
    page.feed(response.content.decode())
    assert page.inline_handlers == []
    assert page.style_attrs == 0
    kinds = sorted(script.get("type") for script in page.scripts)
    assert kinds == ["application/json", "module"]
    for script in page.scripts:
        if script.get("type") == "module":
            assert script["src"].startswith("/static/js/") and not script["text"].strip()
    config = json.loads(
        next(s for s in page.scripts if s.get("type") == "application/json")["text"]
    )
    assert config["rover"] == "curiosity"
    assert config["user"]["username"] == "operator"
    assert config["canAcknowledge"] is False


@pytest.mark.django_db
def test_dashboard_json_config_escapes_hostile_rover_names(client, operator):
    RoverFactory(slug="evil", name="</script><script>alert(1)</script>")
    body = client.get("/").content.decode()
    assert "<script>alert(1)" not in body
    assert "\\u003C/script\\u003E" in body


@pytest.mark.django_db
def test_dashboard_picks_the_rover_from_the_query_or_falls_back(client, user_factory):
    client.force_login(user_factory("lead", perms=("rover.change_alarm",)))
    RoverFactory(slug="curiosity", name="Curiosity")
    RoverFactory(slug="perseverance", name="Perseverance")

    def config(url):
        body = client.get(url).content.decode()
        raw = re.search(r'id="dashboard-config" type="application/json">(.*?)</script>', body)
        return json.loads(raw.group(1))

    assert config("/?rover=perseverance")["rover"] == "perseverance"
    assert config("/?rover=nope")["rover"] == "curiosity"
    assert config("/")["canAcknowledge"] is True
    assert [r["slug"] for r in config("/")["rovers"]] == ["curiosity", "perseverance"]


@pytest.mark.django_db
def test_login_page_gets_the_csp_but_json_answers_do_not(client, operator):
    assert client.get("/accounts/login/")["Content-Security-Policy"] == EXPECTED_CSP
    assert "Content-Security-Policy" not in client.get("/api/rovers")


@pytest.mark.django_db
def test_rover_list_needs_a_login_and_lists_every_rover(client, user_factory):
    RoverFactory(slug="curiosity", name="Curiosity")
    anonymous = client.get("/api/rovers")
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]
    client.force_login(user_factory())
    assert client.get("/api/rovers").json() == {
        "rovers": [
            {
                "slug": "curiosity",
                "name": "Curiosity",
                "stale_after_seconds": 10,
                "landing_date": None,
            }
        ]
    }
    assert client.post("/api/rovers").status_code == 405


IMPORT = re.compile(r"""(?:import|export)[^'";]*?from\s*["']([^"']+)["']""")


@pytest.mark.slow
def test_collectstatic_in_production_hashes_es_modules_and_their_imports(tmp_path):
    """Production settings: hashed, compressed files; every module import is hashed too."""
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="mission_control.settings.production",
        SECRET_KEY="collectstatic-test",
        DEBUG="false",
        ALLOWED_HOSTS="localhost",
        STATIC_ROOT=str(tmp_path),
    )
    env.pop("MC_TEST_RUN_ID", None)
    subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=120,
    )
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    entry = manifest["js/dashboard.js"]
    assert re.fullmatch(r"js/dashboard\.[0-9a-f]{12}\.js", entry)
    assert (tmp_path / f"{entry}.gz").exists()
    hashed = set(manifest.values())
    checked = 0
    for name, hashed_name in manifest.items():
        if not name.startswith("js/"):
            continue
        source = (tmp_path / hashed_name).read_text()
        for target in IMPORT.findall(source):
            resolved = os.path.normpath(os.path.join(os.path.dirname(hashed_name), target))
            assert resolved in hashed, f"{hashed_name} imports unhashed {target}"
            checked += 1
    assert checked >= 8
    assert "vendor/uplot/uPlot.esm.js" in manifest
