"""Time in integer milliseconds since the epoch: the unit of every score and timestamp in Redis."""
from __future__ import annotations

import time
from datetime import UTC, datetime


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def from_rfc3339(text: str) -> int:
    """Milliseconds since the epoch of a time as `to_rfc3339` writes it (or any ISO time with a zone)."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def to_rfc3339(ms: int | None) -> str | None:
    """`2026-11-23T08:21:59.123Z`, the contract's one time format."""
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
