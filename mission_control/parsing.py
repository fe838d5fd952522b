"""Parse what clients send (query parameters, headers, form fields) strictly, with bounds.

One place decides what an integer and a timestamp from the wire look like, so a
value Python would take (`int("٣") == 3`), choke on (`int()` refuses more than
4,300 digits; `"²".isdigit()` is true but `int("²")` raises) or a database would
refuse later (`-23:59` offsets, year 0001 with `+14:00`) answers 400 JSON naming
the field instead of a 500, and never reaches a query.

- Integers: ASCII digits only (`[0-9]{1,N}`, N the digits of the maximum), then
  the bounds. No sign, no spaces (headers may carry the surrounding spaces HTTP
  allows), no underscores, no other scripts' digits.
- Timestamps: ISO 8601, at most 64 characters; the offset a whole number of
  minutes within ±14:00 (the widest in use; Python takes up to ±23:59, PostgreSQL
  refuses past ±15:59); the instant at or after 1970-01-01T00:00Z and at most
  TIMESTAMP_MAX_FUTURE_SECONDS (a day by default) ahead of the server's clock.
  Naive values are read as UTC where the caller allows it. The result is in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import JsonResponse

from accounts.http import json_error

INT64_MAX = 2**63 - 1
TIMESTAMP_MAX_CHARS = 64
MAX_OFFSET = timedelta(hours=14)
# The earliest instant any timestamp from a client may name.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Spaces and tabs around a header value are not part of it (RFC 9110 §5.5).
_HEADER_SPACE = " \t"


# At most this many characters of a client's value are quoted back in an error.
ECHO_MAX_CHARS = 64


def client_repr(value: Any) -> str:
    """Quote a client's value in an error message, cut to ECHO_MAX_CHARS.

    The sender needs enough to recognise its value, not its 100 KB back.
    """
    text = repr(value)
    if len(text) <= ECHO_MAX_CHARS:
        return text
    return f"{text[: ECHO_MAX_CHARS - 1]}… ({len(str(value))} characters)"


class BadParameter(ValueError):
    """A client value is refused; `name` is the query parameter, header or field."""

    def __init__(self, name: str, detail: str, *, code: str = "bad_parameter") -> None:
        super().__init__(detail)
        self.name = name
        self.detail = detail
        self.code = code


def bad_parameter_response(exc: BadParameter) -> JsonResponse:
    """Return 400 `{"error": code, "detail", "parameter": name}`."""
    return json_error(400, exc.code, exc.detail, parameter=exc.name)


def _digits_pattern(maximum: int) -> re.Pattern[str]:
    return re.compile(rf"[0-9]{{1,{len(str(maximum))}}}", re.ASCII)


def parse_int(
    raw: str | None,
    *,
    name: str,
    minimum: int = 0,
    maximum: int = INT64_MAX,
    default: int | None = None,
    header: bool = False,
    code: str = "bad_parameter",
) -> int | None:
    """Return `raw` as an int in [minimum, maximum], `default` when absent or empty.

    Raise BadParameter naming `name` for anything but ASCII digits within the
    bounds. `header=True` drops the spaces HTTP allows around a header value.
    """
    if raw is None:
        return default
    text = raw.strip(_HEADER_SPACE) if header else raw
    if text == "" and text != raw:
        # A header of spaces only is malformed, not absent (Django's own int() of a
        # Content-Length like that raises).
        raise BadParameter(name, f"'{name}' must not be blank.", code=code)
    if text == "":
        return default
    if minimum < 0:
        raise ValueError("parse_int reads unsigned integers only")
    if _digits_pattern(maximum).fullmatch(text) is None or not (minimum <= int(text) <= maximum):
        raise BadParameter(
            name, f"'{name}' must be an integer from {minimum} to {maximum}.", code=code
        )
    return int(text)


def query_int(
    query: Mapping[str, str], name: str, *, default: int | None = None, **bounds: Any
) -> int | None:
    """Return the query parameter `name` parsed by parse_int."""
    return parse_int(query.get(name), name=name, default=default, **bounds)


def header_int(
    headers: Mapping[str, str], name: str, *, default: int | None = None, **bounds: Any
) -> int | None:
    """Return the header `name` parsed by parse_int (surrounding spaces allowed)."""
    return parse_int(headers.get(name), name=name, default=default, header=True, **bounds)


def timestamp_window(*, now: datetime | None = None) -> tuple[datetime, datetime]:
    """Return the inclusive range of instants a client timestamp may name."""
    now = now or datetime.now(UTC)
    return EPOCH, now + timedelta(seconds=settings.TIMESTAMP_MAX_FUTURE_SECONDS)


def timestamp_check(value: datetime, *, name: str, code: str = "bad_parameter") -> datetime:
    """Return an aware datetime in UTC once its offset and instant are in bounds."""
    offset = value.utcoffset()
    if offset is None:
        raise BadParameter(name, f"'{name}' must include a time zone.", code=code)
    if abs(offset) > MAX_OFFSET or offset % timedelta(minutes=1):
        raise BadParameter(
            name,
            f"'{name}' must have a UTC offset of whole minutes within ±14:00.",
            code=code,
        )
    # Compare as offsets from the epoch: converting year 1 at +14:00 to UTC would overflow.
    earliest, latest = timestamp_window()
    if value < earliest or value > latest:
        raise BadParameter(
            name,
            f"'{name}' must be between {earliest.isoformat()} and "
            f"{settings.TIMESTAMP_MAX_FUTURE_SECONDS:g} seconds from now.",
            code=code,
        )
    return value.astimezone(UTC)


def parse_timestamp(
    raw: str | None,
    *,
    name: str,
    default: datetime | None = None,
    naive_is_utc: bool = True,
    query: bool = False,
    code: str = "bad_parameter",
) -> datetime | None:
    """Return an ISO 8601 string as an aware UTC datetime within the timestamp window.

    `query=True` reads a '+' that arrived as a space (an unencoded query string).
    Without `naive_is_utc`, a value with no time zone is refused.
    """
    if raw is None:
        return default
    if not isinstance(raw, str) or len(raw) > TIMESTAMP_MAX_CHARS:
        raise BadParameter(name, f"'{name}' must be an ISO 8601 timestamp string.", code=code)
    text = raw.strip()
    if text == "":
        return default
    if query:
        text = text.replace(" ", "+")
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"'{name}' must be an ISO 8601 timestamp.", code=code) from None
    if value.tzinfo is None:
        if not naive_is_utc:
            raise BadParameter(
                name, f"'{name}' must include a time zone (e.g. 'Z' or '+00:00').", code=code
            )
        value = value.replace(tzinfo=UTC)
    return timestamp_check(value, name=name, code=code)
