"""The simulator against a real server process: valid frames, images, continuing the seq."""

from __future__ import annotations

import subprocess
import sys

import pytest

from accounts.models import ApiToken
from rover.models import RoverImage, RoverMode, TelemetryFrame
from testing.servers import ROOT


def run_simulator(server, data_home, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "simulate_rover", "--url", server.url, "--wait", *args],
        cwd=ROOT,
        # Its stored token goes to the test's directory, never the user's.
        env={**server.env, "XDG_DATA_HOME": str(data_home)},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_simulator_posts_valid_frames_and_images_and_continues_its_seq(
    server_process, rover, tmp_path
):
    server = server_process()
    first = run_simulator(
        server, tmp_path, "--rate", "20", "--duration", "2", "--image-every", "1", "--seed", "7"
    )
    assert first.returncode == 0, first.stderr
    assert "frames refused" not in first.stderr
    assert "(scenario: healthy)" in first.stdout
    assert "HTTP Request" not in first.stderr  # httpx's per-request lines are quiet
    seqs = list(TelemetryFrame.objects.filter(rover=rover).values_list("seq", flat=True))
    assert len(seqs) >= 20
    assert seqs == list(range(len(seqs)))
    for frame in TelemetryFrame.objects.filter(rover=rover):
        assert 0 <= frame.battery_pct <= 100 and -200 <= frame.signal_dbm <= 0
        assert 0 <= frame.heading_deg < 360 and frame.speed_mps >= 0
        assert frame.mode in RoverMode.values
    assert RoverImage.objects.filter(rover=rover).exists()

    second = run_simulator(
        server, tmp_path, "--rate", "20", "--duration", "1", "--image-every", "0"
    )
    assert second.returncode == 0, second.stderr
    assert f"from seq {len(seqs)}" in second.stdout
    after = list(TelemetryFrame.objects.filter(rover=rover).values_list("seq", flat=True))
    assert after == list(range(len(after))) and len(after) > len(seqs)
    # Both starts posted with the one stored token.
    assert ApiToken.objects.filter(user__username="simulator").count() == 1
