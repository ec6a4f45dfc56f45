"""to_rfc3339: the contract's one time format, exact to the millisecond and back through from_rfc3339."""
from __future__ import annotations

import pytest

from app.core.clock import from_rfc3339, to_rfc3339


@pytest.mark.parametrize(("ms", "text"), [
    (0, "1970-01-01T00:00:00.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (1795680119123, "2026-11-26T08:01:59.123Z"),
    (62471754593865, "3949-08-26T17:09:53.865Z"),  # a float of seconds read .864 here
    (253402300799999, "9999-12-31T23:59:59.999Z"),
])
def test_milliseconds_are_written_exactly(ms, text):
    assert to_rfc3339(ms) == text
    assert from_rfc3339(text) == ms


def test_none_stays_none():
    assert to_rfc3339(None) is None
