"""How events are written for the wire: UTC timestamps and JSON text encoded once.

Every stream's events (`rover/events.py`, `comms/events.py`) and the JSON APIs
spell a time the same way, `2026-11-24T12:00:07.123456Z`, so a client parses
one format whichever way the data reached it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

_compact = json.JSONEncoder(separators=(",", ":")).encode


def utc_iso(value: datetime) -> str:
    """Return an aware datetime as ISO 8601 in UTC with a 'Z' (a naive one unchanged)."""
    if value.utcoffset() is not None:
        value = value.astimezone(UTC)
    return value.isoformat().replace("+00:00", "Z")


def json_text(data: Any) -> str:
    """Return compact JSON text: an event's payload, encoded once for every subscriber."""
    return _compact(data)
