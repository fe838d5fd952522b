"""Range headers: ASCII digits only, and positions of any length never raise."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.files import UNSATISFIABLE, parse_range

SIZE = 1000
HUGE = "9" * 5000


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"bytes={HUGE}-", UNSATISFIABLE),
        (f"bytes=0-{HUGE}", (0, SIZE - 1)),
        (f"bytes=-{HUGE}", (0, SIZE - 1)),
        (f"bytes={HUGE}-{HUGE}", UNSATISFIABLE),
        ("bytes=٣-", None),
        ("bytes=0-٣", None),
        ("bytes=²-", None),
        ("bytes=1-2\n", None),
        ("bytes=10-19", (10, 19)),
    ],
)
def test_range_parsing_is_ascii_and_bounded(header, expected):
    assert parse_range(header, SIZE) == expected


@given(st.text(max_size=60))
def test_any_range_header_parses_or_is_ignored(header):
    result = parse_range(header, SIZE)
    assert result is None or result is UNSATISFIABLE or 0 <= result[0] <= result[1] < SIZE
