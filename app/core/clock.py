"""Time in integer milliseconds since the epoch: the unit of every score and timestamp in Redis.

`now_ms()` is the one "now" of htq's timetable (due times, delays, visibility, retention,
intervals, schedule ticks). On the real clock it is the system's time. On the virtual clock
(HTQ_CLOCK=virtual, for development and tests) it is the system's time plus an offset kept in
Redis and shared by every process, which only ever grows (`app/core/virtual_clock.py` advances it);
each process reads it again at most every OFFSET_REFRESH_S. `real_ms()` stays the system's time:
for what measures the life of processes (heartbeats, holds), and for Celery's eta.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime

log = logging.getLogger(__name__)

OFFSET_REFRESH_S = 0.1


class _Offset:
    """The virtual clock's offset in this process: read through `read` (from Redis), kept for
    OFFSET_REFRESH_S, never smaller than a value seen before (time does not move back here
    either, even if a read fails or lags)."""

    def __init__(self, read: Callable[[], int]):
        self._read = read
        self._value = 0
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def __call__(self) -> int:
        if time.monotonic() - self._read_at >= OFFSET_REFRESH_S:
            with self._lock:
                if time.monotonic() - self._read_at >= OFFSET_REFRESH_S:
                    try:
                        self._value = max(self._value, self._read())
                    except Exception as exc:  # the store is down: the last offset read stands
                        log.warning("virtual clock: could not read the offset (%s)", exc)
                    self._read_at = time.monotonic()
        return self._value

    def saw(self, offset_ms: int) -> None:
        with self._lock:
            self._value = max(self._value, offset_ms)


_offset: _Offset | None = None


def real_ms() -> int:
    return time.time_ns() // 1_000_000


def now_ms() -> int:
    return real_ms() + (_offset() if _offset else 0)


def offset_ms() -> int:
    """How far the timetable runs ahead of the system's time (0 on the real clock)."""
    return _offset() if _offset else 0


def to_real_ms(timetable_ms: int) -> int:
    """The system time at which the timetable reaches `timetable_ms`, as things stand (an eta)."""
    return timetable_ms - offset_ms()


def is_virtual() -> bool:
    return _offset is not None


def use_virtual(read_offset: Callable[[], int]) -> None:
    """Put this process on the virtual clock, its offset read through `read_offset`."""
    global _offset
    _offset = _Offset(read_offset)


def use_real() -> None:
    global _offset
    _offset = None


def saw_offset(offset_ms: int) -> None:
    """This process advanced the clock itself: no need to wait for the next read."""
    if _offset is not None:
        _offset.saw(offset_ms)


def from_rfc3339(text: str) -> int:
    """Milliseconds since the epoch of a time as `to_rfc3339` writes it (or any ISO time with a zone)."""
    return round(datetime.fromisoformat(text).timestamp() * 1000)


def to_rfc3339(ms: int | None) -> str | None:
    """`2026-11-23T08:21:59.123Z`, the contract's one time format."""
    if ms is None:
        return None
    # In whole milliseconds, not through a float of seconds (off by one past the year 3000), and
    # without a datetime: three of these for each attempt a worker stores.
    seconds, millis = divmod(int(ms), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"
