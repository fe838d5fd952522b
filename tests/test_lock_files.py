"""The lock files pin exactly what requirements*.txt ask for, and `make` installs them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)(?:\s*;\s*([^\\]+?))?\s*\\?$")


def _requirements(name: str) -> list[Requirement]:
    found = []
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            found.append(Requirement(line))
    return found


def _pins(name: str) -> dict[str, list[str]]:
    """Return package -> pinned versions (one per marker split, e.g. PyPy vs CPython)."""
    pins: dict[str, list[str]] = {}
    for line in (ROOT / name).read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins.setdefault(canonicalize_name(match[1]), []).append(match[2])
    return pins


@pytest.mark.parametrize(
    ("requirements", "lock"),
    [("requirements.txt", "requirements.lock"), ("requirements-dev.txt", "requirements-dev.lock")],
)
def test_every_requirement_is_pinned_within_its_range_with_hashes(requirements, lock):
    pins = _pins(lock)
    wanted = _requirements(requirements)
    if requirements == "requirements-dev.txt":
        wanted += _requirements("requirements.txt")
    for requirement in wanted:
        versions = pins.get(canonicalize_name(requirement.name))
        assert versions, f"{requirement.name} is not in {lock}: run `make lock`"
        for version in versions:
            assert requirement.specifier.contains(version, prereleases=True), (
                f"{lock} pins {requirement.name}=={version}, outside {requirement.specifier}:"
                " run `make lock`"
            )
    text = (ROOT / lock).read_text()
    assert text.count("==") <= text.count("--hash=sha256:")  # every pin carries its hashes


def test_the_dev_lock_keeps_the_runtime_versions():
    runtime, dev = _pins("requirements.lock"), _pins("requirements-dev.lock")
    assert {name: dev.get(name) for name in runtime} == runtime


def test_make_installs_from_the_lock_files():
    dry = subprocess.run(
        ["make", "-n", "-B", ".venv/.installed-dev"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "-r requirements.lock" in dry and "-r requirements-dev.lock" in dry
    assert "-r requirements.txt" not in dry and "-r requirements-dev.txt" not in dry
