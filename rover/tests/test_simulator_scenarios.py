"""The simulated rover starts healthy; trouble is an announced, opt-in scenario."""

from __future__ import annotations

import logging
import random

from rover.log_filters import QuietRoverUplinkFilter
from rover.simulator import FIRST_FADE_S, SCENARIOS, RoverModel


def run(model: RoverModel, seconds: float, dt: float = 0.5) -> dict[str, bool]:
    seen = {"link_down": False, "safe_mode": False}
    for _ in range(int(seconds / dt)):
        frame = model.step(dt)
        seen["link_down"] |= model.link_down
        seen["safe_mode"] |= frame["mode"] == "safe_mode"
    return seen


def test_the_default_scenario_is_healthy_no_fades_no_faults():
    events: list[str] = []
    model = RoverModel(rng=random.Random(3), on_event=events.append, **SCENARIOS["healthy"])
    assert run(model, 3600) == {"link_down": False, "safe_mode": False}
    assert events == []
    assert RoverModel().fades is False and RoverModel().faults is False


def test_fades_come_after_a_healthy_start_and_are_announced():
    events: list[str] = []
    model = RoverModel(rng=random.Random(3), on_event=events.append, **SCENARIOS["fades"])
    assert run(model, FIRST_FADE_S - 1)["link_down"] is False
    assert run(model, 600)["link_down"] is True
    assert events and all(e.startswith("Scenario: the signal fades for") for e in events)
    assert 1 <= len(events) <= 3  # rare: minutes apart


def test_faults_put_the_rover_in_safe_mode_and_are_announced():
    events: list[str] = []
    model = RoverModel(rng=random.Random(5), on_event=events.append, **SCENARIOS["faults"])
    assert run(model, 3600)["safe_mode"] is True
    assert any("safe mode" in event for event in events)


def record(message: str) -> logging.LogRecord:
    return logging.LogRecord("django.channels.server", logging.INFO, "", 0, message, None, None)


def test_access_log_drops_accepted_rover_uplink_posts_only():
    quiet = QuietRoverUplinkFilter()
    assert not quiet.filter(record("HTTP POST /api/rovers/curiosity/telemetry 201 [0.01, a:1]"))
    assert not quiet.filter(record("HTTP POST /api/rovers/curiosity/images 201 [0.20, a:1]"))
    assert quiet.filter(record("HTTP POST /api/rovers/curiosity/telemetry 400 [0.01, a:1]"))
    assert quiet.filter(record("HTTP GET /api/rovers/curiosity/telemetry 200 [0.01, a:1]"))
    assert quiet.filter(record("HTTP GET / 200 [0.01, a:1]"))
    server_log = logging.getLogger("django.channels.server")
    assert any(isinstance(f, QuietRoverUplinkFilter) for f in server_log.filters)
