"""The virtual clock's offset (app/core/clock.py): milliseconds the timetable runs ahead of the
system's time, shared by every process, only ever grown."""
from __future__ import annotations

from app.storage import keys
from app.storage.client import Store


def offset(store: Store) -> int:
    return int(store.redis.get(keys.clock_offset()) or 0)


def advance(store: Store, by_ms: int) -> int:
    """Move the timetable `by_ms` (> 0) ahead, atomically for every process; the new offset."""
    if by_ms <= 0:
        raise ValueError("the virtual clock only moves forward")
    return store.redis.incrby(keys.clock_offset(), by_ms)
