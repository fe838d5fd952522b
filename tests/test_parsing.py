"""The one parser of client integers and timestamps: ASCII digits, bounds, a sane time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mission_control.parsing import (
    INT64_MAX,
    BadParameter,
    parse_int,
    parse_timestamp,
    timestamp_check,
)


@pytest.mark.parametrize(
    "raw",
    ["²", "٣", "3²", "-1", "+1", " 1", "1 ", "1_000", "1.0", "0x10", "\uff11", "9" * 5000, "1e3"],
)
def test_parse_int_refuses_anything_but_ascii_digits(raw):
    with pytest.raises(BadParameter) as info:
        parse_int(raw, name="limit", maximum=100)
    assert info.value.name == "limit"
    assert "limit" in info.value.detail


def test_parse_int_bounds_and_defaults():
    assert parse_int("7", name="n", minimum=1, maximum=10) == 7
    assert parse_int("07", name="n", minimum=1, maximum=10) == 7
    assert parse_int(None, name="n", default=5) == 5
    assert parse_int("", name="n", default=5) == 5
    for raw in ("0", "11", "100000000000000000000"):
        with pytest.raises(BadParameter):
            parse_int(raw, name="n", minimum=1, maximum=10)
    assert parse_int(str(INT64_MAX), name="n") == INT64_MAX
    with pytest.raises(BadParameter):
        parse_int(str(INT64_MAX + 1), name="n")


def test_parse_int_header_allows_surrounding_spaces_only():
    assert parse_int(" 12\t", name="Upload-Offset", header=True) == 12
    with pytest.raises(BadParameter):
        parse_int("1 2", name="Upload-Offset", header=True)
    with pytest.raises(BadParameter):
        parse_int("\xb2", name="Upload-Offset", header=True)
    with pytest.raises(BadParameter):
        parse_int(" \t", name="Content-Length", header=True)


@given(st.text(max_size=40))
def test_parse_int_never_fails_but_with_bad_parameter(raw):
    try:
        value = parse_int(raw, name="page", minimum=1, maximum=10**6)
    except BadParameter:
        return
    assert value is None or (1 <= value <= 10**6 and raw.isascii())


@pytest.mark.parametrize(
    "raw",
    [
        "0001-01-01T00:00:00+14:00",
        "9999-12-31T23:00:00-14:00",
        "2026-11-24T12:00:00-23:59",
        "2026-11-24T12:00:00+14:01",
        "2026-11-24T12:00:00+05:30:15",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00+14:00",
        "3000-01-01T00:00:00Z",
        "yesterday",
        "2026-11-24T12:00:00Z" + " " * 60,
    ],
)
def test_parse_timestamp_refuses_values_outside_the_window(raw):
    with pytest.raises(BadParameter) as info:
        parse_timestamp(raw, name="recorded_at")
    assert info.value.name == "recorded_at"


def test_parse_timestamp_returns_utc_within_the_window():
    assert parse_timestamp("2026-11-24T12:00:00+14:00", name="t") == datetime(
        2026, 11, 23, 22, 0, tzinfo=UTC
    )
    assert parse_timestamp("1970-01-01T00:00:00Z", name="t") == datetime(1970, 1, 1, tzinfo=UTC)
    assert parse_timestamp("2026-11-24T12:00:00", name="t").tzinfo is UTC
    assert parse_timestamp("2026-11-24T12:00:00 00:00", name="t", query=True) is not None
    with pytest.raises(BadParameter):
        parse_timestamp("2026-11-24T12:00:00", name="t", naive_is_utc=False)


def test_future_bound_is_a_setting(settings):
    soon = datetime.now(UTC) + timedelta(hours=2)
    assert timestamp_check(soon, name="t") == soon
    settings.TIMESTAMP_MAX_FUTURE_SECONDS = 60
    with pytest.raises(BadParameter):
        timestamp_check(soon, name="t")
