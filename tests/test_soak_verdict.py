"""bench/soak.py's verdict: RSS flat within ±10% after warm-up, and no error at all."""

from __future__ import annotations

import pytest

from bench.soak import SoakPlan, SoakResult
from bench.soak_report import rss_table

MIB = 1024 * 1024


def _samples(rss_at, seconds: float = 100, every: float = 5):
    """Return samples of one worker (pid 1) whose RSS at time t is rss_at(t) MiB."""
    times = [n * every for n in range(int(seconds / every) + 1)]
    return [(t, {1: ("uvicorn worker", int(rss_at(t) * MIB))}) for t in times]


def test_growth_during_warm_up_is_allowed_and_flat_after_it_passes():
    plan = SoakPlan(seconds=100)
    # 100 MiB at start, 150 by the end of warm-up (20 s), then ±5%.
    rows = rss_table(_samples(lambda t: 100 + 2.5 * min(t, 20) + (5 if t % 10 else -5)), plan)
    assert [row["flat"] for row in rows] == [True]
    assert rows[0]["base"] == 145 * MIB  # the median of 145, 155, 145 (t = 20, 25, 30 s)
    result = SoakResult(plan=plan, rss=rows)
    assert result.passed


def test_growth_past_ten_percent_after_warm_up_fails():
    plan = SoakPlan(seconds=100)
    rows = rss_table(_samples(lambda t: 100 + 0.15 * t), plan)  # +12 MiB after warm-up
    assert [row["flat"] for row in rows] == [False]
    assert rows[0]["drift"] > 0.10
    assert rows[0]["per_minute"] == pytest.approx(MIB * 0.15 * 60, rel=1e-3)
    assert not SoakResult(plan=plan, rss=rows).passed


def test_any_error_fails_even_with_flat_memory():
    plan = SoakPlan(seconds=100)
    result = SoakResult(plan=plan, rss=rss_table(_samples(lambda t: 100), plan))
    assert result.passed
    result.errors["WebSocket closed 1006"] += 1
    assert not result.passed
