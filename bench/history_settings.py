"""Benchmark-only settings: production, plus a URLconf holding the pre-rollup history view."""

from __future__ import annotations

from mission_control.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.history_urls"
