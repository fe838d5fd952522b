"""Benchmark-only settings: production, plus a URLconf holding the naive SSE baseline view."""

from __future__ import annotations

from mission_control.settings.production import *  # noqa: F403

ROOT_URLCONF = "bench.telemetry_urls"
